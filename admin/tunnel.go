package admin

import (
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

// errTunnelOff is the answer to what needs the tunnel when the node runs
// none.
func errTunnelOff(what string) *Error {
	return errConflict("the tunnel is off, so %s is not possible: start `webhookops serve` with --tunnel-addr (e.g. --tunnel-addr :9700, and --tunnel-public-addr HOST:PORT if agents reach it by another name)", what)
}

// enrollMode is what a call to putAgentSecret accepts.
type enrollMode int

const (
	enrollNew      enrollMode = iota // create; 409 if the agent exists
	enrollExisting                   // rotate; 404 if it does not
	enrollAny                        // create or rotate
)

// putAgentSecret gives agent id a fresh secret, creating it first if mode
// allows; allowed, when not nil, replaces its allowed targets. It is the
// one path for POST /agents, POST /agents/{id}/secret and POST
// /agents/{id}/enrollment.
//
// Apply is audited (config.created or config.updated, secret masked), and
// its OnChange reaches the tunnel before Apply returns: a rotated agent's
// session is cut before the answer is written.
func (s *Server) putAgentSecret(id string, allowed []string, mode enrollMode, p principal) (a model.Agent, created bool, err error) {
	sec, err := newAgentSecret()
	if err != nil {
		return model.Agent{}, false, err
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cur, exists := s.node.Snapshot().Agents[id]
	switch {
	case exists && mode == enrollNew:
		return model.Agent{}, false, errConflict("an agent %q already exists (rotate its secret with POST %s/agents/%s/enrollment)", id, APIPrefix, id)
	case !exists && mode == enrollExisting:
		return model.Agent{}, false, errNotFound("no agent %q", id)
	}
	a = model.Agent{ID: id, AllowedTargets: cur.AllowedTargets, Secret: sec}
	if allowed != nil {
		a.AllowedTargets = allowed
	}
	c := actors.Change{Agents: []model.Agent{a}, CreateOnly: mode == enrollNew, UpdateOnly: mode == enrollExisting}
	if cur.Secret != "" {
		c.Audit = []wal.AuditEntry{{At: s.now(), Action: "secret.rotated", ObjectType: "agent", ObjectID: id,
			Detail: map[string]string{"secret": actors.Mask(sec)}}}
	}
	if err := s.apply(c, p); err != nil {
		return model.Agent{}, false, err
	}
	return a, !exists, nil
}

// enrollment describes how agent a (holding its secret in clear) joins this
// node's tunnel; nil when the node runs none.
func (s *Server) enrollment(a model.Agent, created bool) *Enrollment {
	t := s.cfg.Tunnel
	if t == nil {
		return nil
	}
	e := &Enrollment{Tunnel: t.Addr, ID: a.ID, Secret: a.Secret, ServerFingerprint: t.Fingerprint,
		Tunnels: s.tunnelEndpoints(s.tunnelMembers()), AllowedTargets: slices.Clone(a.AllowedTargets), Created: created}
	if e.AllowedTargets == nil {
		e.AllowedTargets = []string{}
	}
	e.Command = joinCommand(e.Tunnels, a)
	return e
}

// shellQuote quotes s for a POSIX shell unless it is plainly safe (an IPv6
// address's brackets, say, are glob characters).
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.:/@%+=,", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (s *Server) enrollAgent(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	var req EnrollmentRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	e, err := s.Enroll(ps.ByName("id"), req.AllowedTargets, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, e, nil
}

// Enroll creates agent id, or gives it a new secret (cutting its session),
// and answers the agentd command line to paste; allowed, when not nil,
// replaces its allowed targets. It needs the tunnel.
func (s *Server) Enroll(id string, allowed []string, p Principal) (*Enrollment, error) {
	if s.cfg.Tunnel == nil {
		return nil, errTunnelOff("enrolling an agent")
	}
	a, created, err := s.putAgentSecret(id, allowed, enrollAny, p)
	if err != nil {
		return nil, err
	}
	return s.enrollment(a, created), nil
}

// --- forwards ---

func (s *Server) forwardOut(f model.Forward, members []TunnelMember) ForwardOut {
	out := ForwardOut{Forward: f, Members: forwardMembers(f, members)}
	if s.cfg.Agents != nil {
		out.AgentOnline, _ = s.cfg.Agents.Online(f.Agent)
	}
	return out
}

func (s *Server) listForwards(*http.Request, httprouter.Params, principal) (int, any, error) {
	return http.StatusOK, newPage(s.Forwards(), ""), nil
}

// Forwards lists the raw TCP forwards by listen address.
func (s *Server) Forwards() []ForwardOut {
	snap := s.node.Snapshot()
	members := s.tunnelMembers()
	var out []ForwardOut
	for _, k := range slices.Sorted(maps.Keys(snap.Forwards)) {
		out = append(out, s.forwardOut(snap.Forwards[k], members))
	}
	return out
}

func (s *Server) getForward(_ *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	f, ok := s.node.Snapshot().Forwards[ps.ByName("listen")]
	if !ok {
		return 0, nil, errNotFound("no forward listening on %q", ps.ByName("listen"))
	}
	return http.StatusOK, s.forwardOut(f, s.tunnelMembers()), nil
}

// createForward checks what Apply cannot see before it writes: that the
// address can be listened on (the tunnel would only log that it cannot).
// Apply checks that the agent allows the target.
func (s *Server) createForward(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	var f model.Forward
	if err := decodeBody(r, &f); err != nil {
		return 0, nil, err
	}
	out, err := s.CreateForward(f, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, out, nil
}

// CreateForward adds a raw TCP forward. It needs the tunnel.
func (s *Server) CreateForward(f model.Forward, p Principal) (ForwardOut, error) {
	if s.cfg.Tunnel == nil {
		return ForwardOut{}, errTunnelOff("a forward")
	}
	if err := f.Validate(); err != nil {
		return ForwardOut{}, err
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	snap := s.node.Snapshot()
	if _, ok := snap.Forwards[f.Listen]; ok {
		return ForwardOut{}, errConflict("a forward already listens on %q (delete it first)", f.Listen)
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return ForwardOut{}, errBadRequest("validation_failed", "listen", "cannot listen on %s: %v", f.Listen, err)
	}
	ln.Close()
	if err := s.apply(actors.Change{Forwards: []model.Forward{f}, CreateOnly: true}, p); err != nil {
		return ForwardOut{}, err
	}
	return s.forwardOut(f, s.tunnelMembers()), nil
}

func (s *Server) deleteForward(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	if err := s.DeleteForward(ps.ByName("listen"), p); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// DeleteForward removes the forward listening on listen; its listener
// closes.
func (s *Server) DeleteForward(listen string, p Principal) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	if _, ok := s.node.Snapshot().Forwards[listen]; !ok {
		return errNotFound("no forward listening on %q", listen)
	}
	return s.apply(actors.Change{DeleteForwards: []string{listen}}, p)
}
