package admin

import (
	"net/http"
	"strings"
)

// Principal is who a call acts as: a token's name and role. The JSON API
// takes it from the request's bearer token, the operator UI from its
// session; both then call the same methods of Server, which audit the
// change as "token:<name>".
type Principal = principal

// Name is the token's name.
func (p principal) Name() string { return p.name }

// ReadOnly reports whether the token may only read.
func (p principal) ReadOnly() bool { return p.role != RoleAdmin }

// Authenticate checks a token as the bearer check does, comparing it in
// constant time with every stored hash. A session that keeps the token
// calls it again on every request, so revoking the token ends the session.
func (s *Server) Authenticate(token string) (Principal, bool) {
	if strings.TrimSpace(token) == "" {
		return principal{}, false
	}
	return s.tokens.check(token)
}

// RefuseLogin audits a refused login with a token (auth.rejected, reason
// "invalid", rate-limited like every refusal).
func (s *Server) RefuseLogin(r *http.Request, token string) {
	s.auditRefusal(r, "invalid", tokenDisplayPrefix(token))
}
