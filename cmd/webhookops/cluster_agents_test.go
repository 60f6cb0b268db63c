package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
)

// agentCluster is three members, each with a tunnel of its own (its own
// certificate), and an agent-mode destination behind an agent "dev" that
// may reach app (and more).
type agentCluster struct {
	t       *testing.T
	bin     string // webhookops
	agentd  string
	nodes   []*clusterNode
	tunnels map[int]string // node id -> tunnel address
	secret  []byte         // the source's
}

func startAgentCluster(t *testing.T, appAddr string, more ...string) *agentCluster {
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
    allowed_targets: [%s]
`, ac.secret, appAddr, `"`+strings.Join(append([]string{appAddr}, more...), `", "`)+`"`)), 0o600)
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
	return ac.startAgentdArgs(args)
}

// startAgentdArgs runs `agentd join ...` (args as an enrollment gives
// them, "agentd" first) as a child process.
func (ac *agentCluster) startAgentdArgs(args []string) *logBuf {
	ac.t.Helper()
	log := &logBuf{}
	cmd := exec.Command(ac.agentd, append(args[1:], "--log-level", "debug", "--log-format", "json")...)
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
// that joins all three, pinning each member's own certificate. The
// agent's credential is replicated, so agentd has a session with each
// member, and another member's API shows the agent's session on each. An
// agent given one member's tunnel joins the others, which that member
// names to it (MEMBERS).
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
		ok := len(a.Members) == 3
		for i, m := range a.Members {
			ok = ok && m.Online && m.Node == uint64(i+1) && m.Transport == "quic" && m.Reachable
		}
		return ok
	}) {
		t.Fatalf("node 2 never saw the agent's session on every member: %+v\nagentd log:\n%s", a.Members, agentLog)
	}
	if !waitFor(10*time.Second, func() bool { return strings.Contains(agentLog.String(), `"sessions_up":"3/3"`) }) {
		t.Fatalf("agentd never logged three sessions up:\n%s", agentLog)
	}
	t.Logf("%v: agent sessions as node 2 sees them: %+v", time.Since(began).Round(time.Millisecond), a.Members)

	// An agent given node 1's tunnel alone (as one enrolled before the
	// others joined) hears every member's tunnel from node 1 and joins
	// them all by itself.
	var solo admin.Enrollment
	ac.api(n1).must(http.StatusCreated, "POST", "/api/v1/agents/solo/enrollment", map[string]any{"allowed_targets": []string{app.Listener.Addr().String()}}, &solo)
	first := solo.Tunnels[0]
	soloLog := ac.startAgentdArgs([]string{"agentd", "join", "--tunnel", first.Addr, "--server-fingerprint", first.Fingerprint,
		"--id", "solo", "--secret", solo.Secret, "--allow", app.Listener.Addr().String()})
	learned := time.Now()
	if !waitFor(20*time.Second, func() bool {
		a = admin.AgentOut{}
		ac.api(n2).call("GET", "/api/v1/agents/solo", nil, &a)
		ok := len(a.Members) == 3
		for _, m := range a.Members {
			ok = ok && m.Online
		}
		return ok
	}) {
		t.Fatalf("an agent given one tunnel never joined every member: %+v\nagentd log:\n%s", a.Members, soloLog)
	}
	if !strings.Contains(soloLog.String(), "joining a tunnel the cluster named") {
		t.Fatalf("agentd did not say it joined the tunnels it learned:\n%s", soloLog)
	}
	t.Logf("an agent given one tunnel was in session with all three %v after it started", time.Since(learned).Round(time.Millisecond))
}

// arrivals records the webhook-ids an app received, and when each first
// came.
type arrivals struct {
	mu    sync.Mutex
	first map[string]time.Time
	n     int
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	if _, ok := a.first[r.Header.Get("Webhook-Id")]; !ok {
		a.first[r.Header.Get("Webhook-Id")] = time.Now()
	}
}

func (a *arrivals) at(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.first[id]
	return t, ok
}

// deliverer is the member leading the partition that holds dest, as the
// live members see it.
func deliverer(live []*clusterNode, dest string) *clusterNode {
	for _, nd := range live {
		st, err := clusterStatus(nd)
		if err != nil {
			continue
		}
		for _, p := range st.Partitions {
			if slices.Contains(p.Destinations, dest) {
				return leaderOf(live, p.Partition)
			}
		}
	}
	return nil
}

// TestClusterAgentFailover: three members, an agent enrolled on one (its
// credential replicated to all) and joined to every member's tunnel, an
// agent-mode destination on a loopback app. Webhooks posted to every
// member reach the app through the member leading the destination's
// partition; that member is killed with -9 and delivery resumes from the
// new leader, through its own session, with every acknowledged event
// delivered. A forward created on one member listens on one member
// (members on one machine cannot share the port), and the forward's state
// says which.
func TestClusterAgentFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers and agentd as child processes")
	}
	got := &arrivals{first: map[string]time.Time{}}
	app := httptest.NewServer(got)
	defer app.Close()
	// A private TCP echo server, reached only through the forward.
	echoAddr := startEcho(t)
	began := time.Now()
	ac := startAgentCluster(t, app.Listener.Addr().String(), echoAddr)
	n1 := ac.nodes[0]
	t.Logf("%v: three members ready", time.Since(began).Round(time.Millisecond))

	// Enrollment names every member's tunnel once each has reported (and
	// works once the config file's agent is applied).
	var (
		enr  admin.Enrollment
		code int
		raw  []byte
	)
	if !waitFor(20*time.Second, func() bool {
		enr = admin.Enrollment{}
		code, raw = ac.api(n1).call("POST", "/api/v1/agents/dev/enrollment", nil, &enr)
		return code == http.StatusCreated && len(enr.Tunnels) == 3
	}) {
		t.Fatalf("enrollment never named three tunnels: %d %s", code, raw)
	}
	agentLog := ac.startAgentd(enr)
	fail := func(format string, args ...any) {
		t.Helper()
		var logs strings.Builder
		for _, nd := range ac.nodes {
			fmt.Fprintf(&logs, "\nnode %d log:\n%s", nd.id, nd.c.log)
		}
		t.Fatalf(format+"\nagentd log:\n%s%s", append(args, agentLog, logs.String())...)
	}
	// Every member accepts the agent: its credential is on every member.
	for _, nd := range ac.nodes {
		var a admin.AgentOut
		if !waitFor(20*time.Second, func() bool {
			a = admin.AgentOut{}
			ac.api(nd).call("GET", "/api/v1/agents/dev", nil, &a)
			return a.Online
		}) {
			fail("node %d never had the agent in session: %+v", nd.id, a)
		}
	}
	t.Logf("%v: the agent is in session with every member", time.Since(began).Round(time.Millisecond))

	// A forward created on one member is replicated to every member; on
	// one machine only one of them can listen on its port, and its state
	// says which (the others say why not).
	fwdAddr := freeAddr(t)
	ac.api(n1).must(http.StatusCreated, "POST", "/api/v1/forwards", map[string]any{"listen": fwdAddr, "agent": "dev", "target": echoAddr}, nil)
	var fwd admin.ForwardOut
	listening := func() (n int) {
		for _, m := range fwd.Members {
			if m.Listening && m.AgentOnline {
				n++
			}
		}
		return n
	}
	if !waitFor(20*time.Second, func() bool {
		fwd = admin.ForwardOut{}
		ac.api(ac.nodes[2]).call("GET", "/api/v1/forwards/"+url.PathEscape(fwdAddr), nil, &fwd)
		reported := 0
		for _, m := range fwd.Members {
			if m.Listening || strings.Contains(m.Error, "address already in use") {
				reported++
			}
		}
		return reported == 3 && listening() == 1
	}) {
		fail("the forward's members never showed one listening and two refused: %+v", fwd.Members)
	}
	if err := echoRoundTrip(fwdAddr, 1<<20); err != nil {
		fail("through the forward: %v", err)
	}
	t.Logf("%v: forward state from node 3: %+v", time.Since(began).Round(time.Millisecond), fwd.Members)

	// Senders post to every live member; acked records event id -> when
	// its 2xx came.
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		mu    sync.Mutex
		acked = map[string]time.Time{}
		live  = slices.Clone(ac.nodes)
		seq   int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			mu.Lock()
			seq++
			key, nd := fmt.Sprintf("k-%d", seq), live[i%len(live)]
			mu.Unlock()
			code, a, err := postSigned(client, nd.ingest, ac.secret, key)
			if err == nil && code/100 == 2 {
				mu.Lock()
				acked[a.EventID] = time.Now()
				mu.Unlock()
			}
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	deliveredSince := func(since time.Time) (int, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		n, firstAt := 0, time.Time{}
		for id, at := range acked {
			if at.Before(since) {
				continue
			}
			if d, ok := got.at(id); ok {
				n++
				if firstAt.IsZero() || d.Before(firstAt) {
					firstAt = d
				}
			}
		}
		return n, firstAt
	}
	if !waitFor(20*time.Second, func() bool { n, _ := deliveredSince(began); return n >= 20 }) {
		fail("webhooks never reached the app through the agent")
	}
	victim := deliverer(ac.nodes, "private")
	if victim == nil {
		fail("no member leads the destination's partition")
	}
	t.Logf("%v: delivering through node %d; kill -9", time.Since(began).Round(time.Millisecond), victim.id)

	mu.Lock()
	live = slices.DeleteFunc(slices.Clone(ac.nodes), func(nd *clusterNode) bool { return nd == victim })
	mu.Unlock()
	victim.c.kill9()
	killed := time.Now()
	if !waitFor(30*time.Second, func() bool { n, _ := deliveredSince(killed); return n > 0 }) {
		fail("no event acknowledged after the kill of node %d was delivered", victim.id)
	}
	_, firstAfter := deliveredSince(killed)
	// And it goes on: more acknowledged since the kill reach the app.
	if !waitFor(30*time.Second, func() bool { n, _ := deliveredSince(killed); return n >= 20 }) {
		n, _ := deliveredSince(killed)
		fail("only %d events acknowledged after the kill of node %d were delivered", n, victim.id)
	}
	heir := deliverer(live, "private")
	if heir == nil || heir == victim {
		fail("no new member delivers after the kill (heir %v)", heir)
	}
	t.Logf("first event acknowledged after the kill of node %d delivered %v after it, through node %d",
		victim.id, firstAfter.Sub(killed).Round(time.Millisecond), heir.id)

	// The survivors' view of the agent: in session with both, the dead
	// member's last report kept but unreachable.
	var a admin.AgentOut
	if !waitFor(10*time.Second, func() bool {
		a = admin.AgentOut{}
		ac.api(heir).call("GET", "/api/v1/agents/dev", nil, &a)
		ok := len(a.Members) == 3
		for _, m := range a.Members {
			ok = ok && (m.Reachable != (m.Node == uint64(victim.id))) && (m.Node == uint64(victim.id) || m.Online)
		}
		return ok
	}) {
		fail("agent members as node %d sees them: %+v", heir.id, a.Members)
	}

	// The forward works after the kill: if the dead member held its port,
	// a survivor takes it over (it retries listening every 5 s).
	var holder uint64
	for _, m := range fwd.Members {
		if m.Listening {
			holder = m.Node
		}
	}
	if !waitFor(20*time.Second, func() bool {
		fwd = admin.ForwardOut{}
		ac.api(heir).call("GET", "/api/v1/forwards/"+url.PathEscape(fwdAddr), nil, &fwd)
		for _, m := range fwd.Members {
			if m.Node != uint64(victim.id) && m.Listening && m.AgentOnline {
				holder = m.Node
				return true
			}
		}
		return false
	}) {
		fail("no survivor listens for the forward: %+v", fwd.Members)
	}
	if err := echoRoundTrip(fwdAddr, 1<<20); err != nil {
		fail("through the forward after the kill: %v", err)
	}
	t.Logf("%v: the forward listens on node %d after the kill", time.Since(began).Round(time.Millisecond), holder)

	close(stop)
	wg.Wait()
	// Every acknowledged event reaches the app.
	var missing []string
	if !waitFor(30*time.Second, func() bool {
		missing = missing[:0]
		mu.Lock()
		defer mu.Unlock()
		for id := range acked {
			if _, ok := got.at(id); !ok {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	}) {
		fail("%d of %d acknowledged events never delivered, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
	}
	got.mu.Lock()
	total, distinct := got.n, len(got.first)
	got.mu.Unlock()
	t.Logf("%d events acknowledged, all delivered (%d requests for %d ids) in %v", len(acked), total, distinct, time.Since(began).Round(time.Millisecond))
}
