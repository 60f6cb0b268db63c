package admin

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/webhookops/webhookops/wal"
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

// ErrorOf maps an error from a Server method to the status, code and
// message the JSON API would answer with.
func ErrorOf(err error) *Error { return toError(err) }

// OpenAPIJSON is the OpenAPI document GET /api/v1/openapi.json serves.
func (s *Server) OpenAPIJSON() []byte { return s.openapi }

// AuditSession records a UI login or logout (ui.login, ui.logout) as the
// token's principal.
func (s *Server) AuditSession(action string, p Principal, r *http.Request) {
	s.node.Audit(wal.AuditEntry{At: s.now(), Action: action, ObjectType: "token", ObjectID: p.name, Actor: p.actor(),
		Detail: map[string]string{"remote_addr": r.RemoteAddr}})
}

// MountUI serves h, the operator UI (package admin/ui), under /ui/ and the
// API docs under /api/docs/, and redirects / to /ui/. The UI keeps its own
// sessions, checked with Authenticate on every request, and calls the
// same methods the JSON handlers do; its pages are not API routes, so
// Routes and the OpenAPI document leave them out. Call it before serving.
func (s *Server) MountUI(h http.Handler) {
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		s.router.Handler(m, "/ui/*path", h)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		s.router.Handler(m, "/api/docs/*path", h)
	}
	s.router.Handler(http.MethodGet, "/", http.RedirectHandler("/ui/", http.StatusFound))
}

// maxBusyAsked bounds how many destinations BusyDestinations asks.
const maxBusyAsked = 500

// BusyDestinations reads the queues of the destinations with deliveries
// pending and answers the n deepest, open circuits first. It asks only
// those destinations' actors, and at most maxBusyAsked of them (in slug
// order), so a node with many idle destinations answers as fast as one
// with few, and one with thousands of busy ones stays bounded.
func (s *Server) BusyDestinations(ctx context.Context, n int) ([]DestinationOut, error) {
	slugs, err := s.db.DestsWithPending()
	if err != nil {
		return nil, err
	}
	slices.Sort(slugs)
	slugs = slugs[:min(len(slugs), maxBusyAsked)]
	snap := s.node.Snapshot()
	var out []DestinationOut
	for _, slug := range slugs {
		if _, ok := snap.Destinations[slug]; !ok {
			continue
		}
		d, err := s.Destination(ctx, slug)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b DestinationOut) int {
		if a.Stats.CircuitOpen != b.Stats.CircuitOpen {
			if a.Stats.CircuitOpen {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.Stats.QueueDepth, a.Stats.QueueDepth)
	})
	return out[:min(n, len(out))], nil
}
