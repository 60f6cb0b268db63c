package main

import (
	"context"
	"time"

	"github.com/webhookops/webhookops/actors/cluster"
	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
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

// reportTunnel makes the member's tunnel known to the others: its
// endpoint (so enrollment on any member names every member's tunnel), its
// agents' sessions and its forwards' listeners.
func (m *clusterMember) reportTunnel(t *tunnel) {
	m.cl.ReportTunnel(tunnelSource{t}, tunnelReportEvery)
	t.agents.SetOnChange(m.cl.TunnelChanged)
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
