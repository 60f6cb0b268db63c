package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/admin/internal/testnode"
)

func TestAgentsEnrollAndForwards(t *testing.T) {
	s := startServer(t, t.TempDir())
	srv := s.api.URL

	out, errOut, code := run(t, srv, "agents", "enroll", "dev", "--allow", "127.0.0.1:3000", "--allow", "db.internal:5432")
	if code != 0 {
		t.Fatalf("enroll: %d %s", code, errOut)
	}
	secret := s.Node.Node.Snapshot().Agents["dev"].Secret
	want := "agentd join --tunnel gw.example:7443 --id dev --secret " + secret + " --server-fingerprint sha256:abcd --allow 127.0.0.1:3000 --allow db.internal:5432"
	if !strings.Contains(out, "enrolled new agent dev") || !strings.Contains(out, "\n    "+want+"\n") {
		t.Fatalf("enroll printed:\n%s\nwant the command %s", out, want)
	}

	// Again with --json and no --allow: a new secret, the targets kept.
	out, errOut, code = run(t, srv, "agents", "enroll", "dev", "--json")
	var e admin.Enrollment
	if code != 0 || json.Unmarshal([]byte(out), &e) != nil {
		t.Fatalf("enroll --json: %d %s %s", code, out, errOut)
	}
	if e.Created || e.Secret == secret || len(e.AllowedTargets) != 2 || !strings.Contains(e.Command, "--secret "+e.Secret) {
		t.Fatalf("re-enrollment: %+v", e)
	}
	if _, errOut, code = run(t, srv, "agents", "enroll", "dev", "--allow", "nope"); code != ExitInvalid || !strings.Contains(errOut, "allowed_targets[0]") {
		t.Fatalf("bad --allow: %d %s", code, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	out, errOut, code = run(t, srv, "forwards", "create", "--listen", listen, "--agent", "dev", "--target", "db.internal:5432")
	if code != 0 || !strings.Contains(out, "forwarding "+listen+" through agent dev to db.internal:5432") || !strings.Contains(out, "offline") {
		t.Fatalf("forwards create: %d %s %s", code, out, errOut)
	}
	if _, errOut, code = run(t, srv, "forwards", "create", "--listen", "127.0.0.1:1", "--agent", "dev", "--target", "10.1.1.1:22"); code != ExitInvalid || !strings.Contains(errOut, "target:") {
		t.Fatalf("forward to a target the agent does not allow: %d %s", code, errOut)
	}
	out, _, code = run(t, srv, "forwards", "list")
	if code != 0 || !strings.Contains(out, "LISTEN") || !strings.Contains(out, listen) || strings.Contains(out, "MEMBERS") {
		t.Fatalf("forwards list: %d\n%s", code, out)
	}
	out, _, code = run(t, srv, "forwards", "get", listen, "--json")
	var f admin.ForwardOut
	if code != 0 || json.Unmarshal([]byte(out), &f) != nil || f.Target != "db.internal:5432" {
		t.Fatalf("forwards get: %d %s", code, out)
	}
	// An IPv6 listen address travels escaped and comes back whole.
	if _, errOut, code = run(t, srv, "forwards", "get", "[::1]:5432"); code != ExitNotFound || !strings.Contains(errOut, `"[::1]:5432"`) {
		t.Fatalf("forwards get of an IPv6 address: %d %s", code, errOut)
	}
	if out, _, code = run(t, srv, "forwards", "delete", listen); code != 0 || !strings.Contains(out, "deleted forward "+listen) {
		t.Fatalf("forwards delete: %d %s", code, out)
	}
	if _, _, code = run(t, srv, "forwards", "delete", listen); code != ExitNotFound {
		t.Fatalf("second delete: %d", code)
	}
}

// TestClusterMembersColumns: on a cluster member, agents and forwards
// lists have a MEMBERS column (each member's session or listener, ? where
// the member is unreachable now), and get shows a table per member; a
// single node's lists have no such column.
func TestClusterMembersColumns(t *testing.T) {
	listen := testnode.FreeAddr(t)
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	tn := testnode.Start(t, testnode.Options{Dir: t.TempDir(), SecretKey: key, Token: token,
		Tunnel: &admin.TunnelInfo{Addr: "gw.example:7443", Fingerprint: "sha256:abcd"},
		TunnelMembers: func(context.Context) ([]admin.TunnelMember, error) {
			return []admin.TunnelMember{
				{Node: 1, Addr: "gw.example:7443", Fingerprint: "sha256:abcd", ReportedAt: at, Reachable: true,
					Sessions:  map[string]api.MemberSession{"dev": {Online: true, Transport: "quic", Remote: "10.0.0.9:5000", Since: at}},
					Listeners: map[string]string{listen: ""}},
				{Node: 2, Addr: "n2.example:7443", Fingerprint: "sha256:abcd", ReportedAt: at,
					Listeners: map[string]string{listen: "address already in use"}},
			}, nil
		}})
	s := &server{Node: tn, api: httptest.NewServer(tn.Admin)}
	t.Cleanup(s.stop)
	srv := s.api.URL
	if _, errOut, code := run(t, srv, "agents", "create", "dev", "--allow", "db.internal:5432"); code != 0 {
		t.Fatalf("agents create: %d %s", code, errOut)
	}
	if _, errOut, code := run(t, srv, "forwards", "create", "--listen", listen, "--agent", "dev", "--target", "db.internal:5432"); code != 0 {
		t.Fatalf("forwards create: %d %s", code, errOut)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"agents", "list"}, []string{"MEMBERS", "1:up 2:down?"}},
		{[]string{"agents", "get", "dev"}, []string{"NODE", "TUNNEL", "n2.example:7443", "10.0.0.9:5000", "quic"}},
		{[]string{"forwards", "list"}, []string{"MEMBERS", "1:up 2:no?"}},
		{[]string{"forwards", "get", listen}, []string{"LISTENING", "address already in use"}},
	} {
		out, errOut, code := run(t, srv, c.args...)
		for _, w := range c.want {
			if code != 0 || !strings.Contains(out, w) {
				t.Fatalf("%v: %d %s\nwant %q in:\n%s", c.args, code, errOut, w, out)
			}
		}
		if strings.Contains(out, `"node"`) {
			t.Fatalf("%v shows members as JSON in its table:\n%s", c.args, out)
		}
	}
}

// TestClusterTablesNameTunnels: cluster status names each member's tunnel,
// "-" for one that runs none or has not reported.
func TestClusterTablesNameTunnels(t *testing.T) {
	var b strings.Builder
	err := clusterTables(&b, api.ClusterStatus{NodeID: 1, Nodes: []api.ClusterNode{
		{ID: 1, Address: "10.0.0.1:7101", Reachable: true, Leads: 2, Tunnel: "gw1.example:9700"},
		{ID: 2, Address: "10.0.0.2:7101"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	// NODE ADDRESS REACHABLE LEADS TUNNEL ...: the tunnel is the fifth column.
	if len(lines) < 5 || !strings.Contains(lines[2], "TUNNEL") || len(strings.Fields(lines[3])) < 5 || strings.Fields(lines[3])[4] != "gw1.example:9700" ||
		len(strings.Fields(lines[4])) < 5 || strings.Fields(lines[4])[4] != "-" {
		t.Fatalf("cluster status:\n%s", b.String())
	}
}
