package admin

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"
)

// TunnelMember is one cluster member's tunnel as the cluster's tunnel
// directory holds its last report.
type TunnelMember struct {
	Node        uint64
	Addr        string // where agents dial it
	Fingerprint string // its certificate's pin
	ReportedAt  time.Time
	// Reachable: the answering member could reach it just now.
	Reachable bool
	// Sessions are the agents in session there, by id (Online, Since,
	// Remote and Transport set).
	Sessions map[string]api.MemberSession
	// Listeners are its forwards by listen address: "" when it listens,
	// else why it cannot.
	Listeners map[string]string
}

// tunnelMembersTimeout bounds asking the directory and dialling members.
const tunnelMembersTimeout = 2 * time.Second

// tunnelMembers reads the cluster's tunnel directory, by node id; nil on
// a single node, or when the directory cannot be read (logged).
func (s *Server) tunnelMembers() []TunnelMember {
	if s.cfg.TunnelMembers == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), tunnelMembersTimeout)
	defer cancel()
	ms, err := s.cfg.TunnelMembers(ctx)
	if err != nil {
		s.log.Warn("tunnel directory unreadable", "err", err)
		return nil
	}
	slices.SortFunc(ms, func(a, b TunnelMember) int { return cmp.Compare(a.Node, b.Node) })
	return ms
}

// agentMembers is agent id's session on each member.
func agentMembers(id string, ms []TunnelMember) []api.MemberSession {
	var out []api.MemberSession
	for _, m := range ms {
		ses := m.Sessions[id] // zero: no session there
		ses.Node, ses.Tunnel, ses.ReportedAt, ses.Reachable = m.Node, m.Addr, m.ReportedAt, m.Reachable
		out = append(out, ses)
	}
	return out
}

// forwardMembers is forward f on each member.
func forwardMembers(f model.Forward, ms []TunnelMember) []api.MemberListener {
	var out []api.MemberListener
	for _, m := range ms {
		why, ok := m.Listeners[f.Listen]
		if !ok {
			why = "not started (yet) on this member"
		}
		out = append(out, api.MemberListener{Node: m.Node, Listening: ok && why == "", Error: why,
			AgentOnline: m.Sessions[f.Agent].Online, ReportedAt: m.ReportedAt, Reachable: m.Reachable})
	}
	return out
}

// tunnelEndpoints are the tunnels an agent joins: every member's in a
// cluster (this node's included even before its own report is in the
// directory), else this node's alone.
func (s *Server) tunnelEndpoints(ms []TunnelMember) []api.TunnelEndpoint {
	t := s.cfg.Tunnel
	var out []api.TunnelEndpoint
	own := false
	for _, m := range ms {
		out = append(out, api.TunnelEndpoint{Node: m.Node, Addr: m.Addr, Fingerprint: m.Fingerprint})
		own = own || (m.Addr == t.Addr && m.Fingerprint == t.Fingerprint)
	}
	if !own {
		out = append([]api.TunnelEndpoint{{Addr: t.Addr, Fingerprint: t.Fingerprint}}, out...)
	}
	return out
}

// joinCommand is the agentd command line joining tunnels as agent a: a
// --tunnel per tunnel, and one --server-fingerprint when they share a
// certificate, else one per tunnel in the same order.
func joinCommand(tunnels []api.TunnelEndpoint, a model.Agent) string {
	args := []string{"agentd", "join"}
	shared := true
	for _, t := range tunnels {
		args = append(args, "--tunnel", t.Addr)
		shared = shared && t.Fingerprint == tunnels[0].Fingerprint
	}
	args = append(args, "--id", a.ID, "--secret", a.Secret)
	for i, t := range tunnels {
		if i == 0 || !shared {
			args = append(args, "--server-fingerprint", t.Fingerprint)
		}
	}
	for _, target := range a.AllowedTargets {
		args = append(args, "--allow", target)
	}
	for i, arg := range args {
		args[i] = shellQuote(arg)
	}
	return strings.Join(args, " ")
}
