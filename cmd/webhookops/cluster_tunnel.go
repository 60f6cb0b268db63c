package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/webhookops/webhookops/actors/cluster"
	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/tunnelproto"
)

// tunnelReportEvery is how often a member reports its tunnel to the
// cluster's tunnel directory without a change (besides on every change).
const tunnelReportEvery = 30 * time.Second

// tunnelSource is this member's tunnel as the cluster's reporter reads it.
type tunnelSource struct{ t *tunnel }

func (s tunnelSource) TunnelState() cluster.TunnelReport {
	r := cluster.TunnelReport{Addr: s.t.publicAddr, Fingerprint: s.t.agents.Fingerprint(),
		Sessions: map[string]cluster.TunnelSession{}, Listeners: s.t.agents.Listeners()}
	for _, ses := range s.t.agents.Sessions() {
		r.Sessions[ses.AgentID] = cluster.TunnelSession{Remote: ses.RemoteAddr, Transport: ses.Transport.String(), Since: ses.Since.UTC()}
	}
	return r
}

// tellAgentsEvery is how often a member reads the tunnel directory to tell
// its agents the cluster's tunnels (only a change is sent).
const tellAgentsEvery = time.Second

// reportTunnel makes the member's tunnel known to the others: its
// endpoint (so enrollment on any member names every member's tunnel), its
// agents' sessions and its forwards' listeners; and tells its agents every
// member's tunnel, so they join members added after their enrollment.
func (m *clusterMember) reportTunnel(t *tunnel, log *slog.Logger) {
	m.cl.ReportTunnel(tunnelSource{t}, tunnelReportEvery)
	t.agents.SetOnChange(m.cl.TunnelChanged)
	m.cl.WatchTunnels(tellAgentsEvery, func(dir cluster.TunnelDirectory) {
		if err := t.agents.SetMembers(tunnelMembersOf(dir)); err != nil {
			log.Warn("cannot tell agents the cluster's tunnels", "err", err)
		}
	})
}

// tunnelMembersOf is the directory's tunnels, by node id, at most as many
// as one MEMBERS frame carries; a member whose --tunnel-public-addr is no
// host:port agents could dial is left out.
func tunnelMembersOf(dir cluster.TunnelDirectory) []tunnelproto.Member {
	var ms []tunnelproto.Member
	for _, id := range dir.Nodes() {
		r := dir[id]
		host, port, err := net.SplitHostPort(r.Addr)
		if err != nil || host == "" || port == "" || len(r.Addr) > tunnelproto.MaxMemberAddrLen {
			continue
		}
		if _, err := tunnelproto.ParseFingerprint(r.Fingerprint); err != nil || len(ms) == tunnelproto.MaxMembers {
			continue
		}
		ms = append(ms, tunnelproto.Member{Addr: r.Addr, Fingerprint: r.Fingerprint})
	}
	return ms
}

// tunnelMembers is the admin API's view of the tunnel directory, with each
// member's reachability as the cluster status sees it.
func (m *clusterMember) tunnelMembers(ctx context.Context) ([]admin.TunnelMember, error) {
	dir, err := m.cl.Tunnels()
	if err != nil {
		return nil, err
	}
	reachable := map[uint64]bool{}
	if st, err := m.cl.Status(ctx); err == nil {
		for _, n := range st.Nodes {
			reachable[n.ID] = n.Reachable
		}
	}
	out := make([]admin.TunnelMember, 0, len(dir))
	for _, id := range dir.Nodes() {
		r := dir[id]
		tm := admin.TunnelMember{Node: id, Addr: r.Addr, Fingerprint: r.Fingerprint, ReportedAt: r.At,
			Reachable: reachable[id], Sessions: map[string]api.MemberSession{}, Listeners: r.Listeners}
		for agent, ses := range r.Sessions {
			tm.Sessions[agent] = api.MemberSession{Online: true, Since: ses.Since, Remote: ses.Remote, Transport: ses.Transport}
		}
		out = append(out, tm)
	}
	return out, nil
}
