package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
)

// agentCluster is three members, each with a tunnel of its own (its own
// certificate), and an agent-mode destination behind an agent "dev" that
// may reach app.
type agentCluster struct {
	t       *testing.T
	bin     string // webhookops
	agentd  string
	nodes   []*clusterNode
	tunnels map[int]string // node id -> tunnel address
	secret  []byte         // the source's
}

func startAgentCluster(t *testing.T, appAddr string) *agentCluster {
	t.Helper()
	bins := buildCommands(t, "webhookops", "agentd")
	ac := &agentCluster{t: t, bin: bins[0], agentd: bins[1], tunnels: map[int]string{}, secret: []byte("cluster-agents-secret")}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sources:
  - slug: s
    provider: generic
    secrets: [%q]
    routes:
      - destination: private
destinations:
  - slug: private
    mode: agent
    agent: dev
    url: http://%s/hooks
    backoff_base: 100ms
    backoff_max: 200ms
    max_attempts: 100
agents:
  - id: dev
    allowed_targets: [%q]
`, ac.secret, appAddr, appAddr)), 0o600)
	ac.nodes = startClusterNodesEach(t, ac.bin, cfg, 3, false, func(nd *clusterNode) []string {
		ac.tunnels[nd.id] = freeUDP(t)
		return []string{"--tunnel-addr", ac.tunnels[nd.id]}
	})
	return ac
}

func (ac *agentCluster) api(nd *clusterNode) *apiClient {
	return &apiClient{t: ac.t, base: "http://" + nd.admin}
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// startAgentd runs the enrollment's command as a child process, with its
// log in the returned buffer; Cleanup kills it.
func (ac *agentCluster) startAgentd(enr admin.Enrollment) *logBuf {
	ac.t.Helper()
	args := strings.Fields(enr.Command)
	if len(args) < 2 || args[0] != "agentd" || args[1] != "join" {
		ac.t.Fatalf("enrollment command %q", enr.Command)
	}
	log := &logBuf{}
	cmd := exec.Command(ac.agentd, append(args[1:], "--log-level", "debug")...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		ac.t.Fatal(err)
	}
	ac.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return log
}

// TestClusterAgentTunnels: every member reports its tunnel to the others
// (the tunnel directory): the cluster status on any member names every
// member's tunnel, and enrollment on one member answers an agentd command
// that joins all three, pinning each member's own certificate. agentd
// keeps a session to each member that accepts it, and another member's
// API shows the agent's session on each member.
func TestClusterAgentTunnels(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers and agentd as child processes")
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer app.Close()
	began := time.Now()
	ac := startAgentCluster(t, app.Listener.Addr().String())
	n1, n2 := ac.nodes[0], ac.nodes[1]
	t.Logf("%v: three members ready", time.Since(began).Round(time.Millisecond))

	// The status names every member's tunnel once each has reported.
	var st api.ClusterStatus
	if !waitFor(20*time.Second, func() bool {
		var err error
		st, err = clusterStatus(n2)
		if err != nil || len(st.Nodes) != 3 {
			return false
		}
		for _, n := range st.Nodes {
			if n.Tunnel != ac.tunnels[int(n.ID)] {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("cluster status never named every member's tunnel (%v): %+v", ac.tunnels, st)
	}

	var enr admin.Enrollment
	ac.api(n1).must(http.StatusCreated, "POST", "/api/v1/agents/dev/enrollment", nil, &enr)
	if len(enr.Tunnels) != 3 {
		t.Fatalf("enrollment names %d tunnels: %+v", len(enr.Tunnels), enr.Tunnels)
	}
	var pins []string
	for i, tun := range enr.Tunnels {
		if tun.Node != uint64(i+1) || tun.Addr != ac.tunnels[i+1] || !strings.Contains(enr.Command, "--tunnel "+tun.Addr+" ") {
			t.Fatalf("enrollment tunnel %d: %+v (tunnels %v), command %s", i, tun, ac.tunnels, enr.Command)
		}
		pins = append(pins, "--server-fingerprint "+tun.Fingerprint)
	}
	// Each member generated its own certificate: a pin each, in order.
	distinct := slices.Compact(slices.Sorted(slices.Values(pins)))
	if !strings.Contains(enr.Command, strings.Join(pins, " ")) || len(distinct) != 3 {
		t.Fatalf("enrollment pins: %s", enr.Command)
	}
	agentLog := ac.startAgentd(enr)

	// Another member's API shows the session on the member that enrolled
	// the agent (which holds its secret), through the directory.
	var a admin.AgentOut
	if !waitFor(20*time.Second, func() bool {
		a = admin.AgentOut{}
		ac.api(n2).call("GET", "/api/v1/agents/dev", nil, &a)
		return len(a.Members) == 3 && a.Members[0].Online && a.Members[0].Node == 1 && a.Members[0].Transport == "quic"
	}) {
		t.Fatalf("node 2 never saw the agent's session on node 1: %+v\nagentd log:\n%s", a.Members, agentLog)
	}
	if !strings.Contains(agentLog.String(), "sessions_up=") {
		t.Fatalf("agentd log says nothing of its sessions:\n%s", agentLog)
	}
	t.Logf("%v: agent sessions as node 2 sees them: %+v", time.Since(began).Round(time.Millisecond), a.Members)
}
