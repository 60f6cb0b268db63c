package agentreg

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/actors/leaktest"
	"github.com/webhookops/webhookops/agentd"
	"github.com/webhookops/webhookops/tunnelproto"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// runAgent runs an in-process agentd until the returned stop is called.
func runAgent(t *testing.T, r *Registry, id, secret string, allow []string) (stop func()) {
	t.Helper()
	cfg := agentd.DefaultConfig()
	cfg.Tunnels = []agentd.Endpoint{{Addr: r.Addr().String(), Fingerprint: r.Fingerprint()}}
	cfg.ID, cfg.Secret = id, secret
	cfg.Allow = allow
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	cfg.DrainTimeout = 100 * time.Millisecond
	ag, err := agentd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ag.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitOnline(t *testing.T, r *Registry, id string, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if on, _ := r.Online(id); on == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s online never became %v", id, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, db *wal.DB, id, status string) {
	t.Helper()
	_, seq, err := wal.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := db.GetDelivery("app", seq)
		if err == nil && d.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never reached %s (last: %+v, %v)", id, status, d, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// newRegistry binds a registry on loopback with a fresh certificate.
func newRegistry(t *testing.T, db *wal.DB) *Registry {
	t.Helper()
	return newRegistryWith(t, db, nil)
}

// newRegistryWith is newRegistry with its config changed by mutate.
func newRegistryWith(t *testing.T, db *wal.DB, mutate func(*Config)) *Registry {
	t.Helper()
	cert, _, err := tunnelproto.LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tcfg := tunnelproto.DefaultServerConfig()
	tcfg.Addr, tcfg.TLSCert = "127.0.0.1:0", cert
	cfg := Config{Tunnel: tcfg, DB: db, RetryListen: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	reg, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// startNode wires a registry and a node the way cmd/webhookops does: the
// registry first, the node's delivery dialling through it and its changes
// reaching it, then the registry starts with the loaded configuration.
// before, when set, runs before the registry starts.
func startNode(t *testing.T, before func(*actors.Node)) (*actors.Node, *Registry, *wal.DB) {
	t.Helper()
	return startNodeWith(t, before, nil)
}

// startNodeWith is startNode with the registry's config changed by mutate.
func startNodeWith(t *testing.T, before func(*actors.Node), mutate func(*Config)) (*actors.Node, *Registry, *wal.DB) {
	t.Helper()
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := newRegistryWith(t, db, mutate)
	t.Cleanup(reg.Close)
	n, err := actors.Start(actors.Config{
		DB:        db,
		Deliverer: delivery.NewClient(delivery.Options{AgentDial: reg.Dial}),
		OnChange:  func(_, next *actors.Snapshot) { reg.SetConfig(next.Agents, next.Forwards) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	snap := n.Snapshot()
	reg.SetConfig(snap.Agents, snap.Forwards)
	if before != nil {
		before(n)
	}
	reg.Start()
	return n, reg, db
}

func ingest(t *testing.T, n *actors.Node, key, body string) string {
	t.Helper()
	src, ok := n.Source("src")
	if !ok {
		t.Fatal("no source src")
	}
	res, err := n.Ingest(context.Background(), actors.IngestRequest{Source: "src", IdemKey: key, Headers: [][2]string{{"X-Key", key}}, Body: []byte(body)}, src)
	if err != nil {
		t.Fatal(err)
	}
	return res.EventID
}

// TestDeliveryThroughAgent sends an event to a mode: agent destination: it
// reaches a loopback app behind an in-process agent over a real QUIC
// tunnel, with the same headers as public delivery. The agent is then
// stopped mid-delivery: the attempt fails, and the retry succeeds once it
// is back. Rotating the agent's secret cuts its session.
func TestDeliveryThroughAgent(t *testing.T) {
	var hold atomic.Bool
	release := make(chan struct{})
	got := make(chan *http.Request, 10)
	bodies := make(chan string, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if hold.Load() {
			<-release
			return
		}
		got <- r
		bodies <- string(b)
	}))
	defer app.Close()
	appAddr := strings.TrimPrefix(app.URL, "http://")

	n, reg, db := startNode(t, nil)
	err := n.Apply(actors.Change{
		Agents:  []model.Agent{{ID: "dev", AllowedTargets: []string{appAddr}, Secret: "agent-secret"}},
		Sources: []model.Source{{Slug: "src", Provider: "generic", Verify: "none", Routes: []model.Route{{Destination: "app"}}}},
		Destinations: []model.Destination{{Slug: "app", URL: app.URL + "/hooks", Mode: "agent", Agent: "dev",
			BackoffBase: model.Duration(50 * time.Millisecond), BackoffMax: model.Duration(100 * time.Millisecond), MaxAttempts: 50,
			Headers: map[string]string{"X-Team": "payments"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, reg, "dev", "agent-secret", []string{appAddr})
	waitOnline(t, reg, "dev", true)

	id := ingest(t, n, "k1", `{"hello":"agent"}`)
	select {
	case r := <-got:
		if r.Header.Get("webhook-id") != id || r.Header.Get("X-Team") != "payments" || r.Header.Get("webhook-signature") == "" || r.Header.Get("X-Key") != "k1" {
			t.Fatalf("headers through the agent: %v", r.Header)
		}
		if b := <-bodies; b != `{"hello":"agent"}` {
			t.Fatalf("body %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived through the agent")
	}
	waitStatus(t, db, id, wal.StatusDelivered)

	// Kill the agent mid-delivery.
	hold.Store(true)
	id2 := ingest(t, n, "k2", "second")
	time.Sleep(200 * time.Millisecond)
	stop()
	hold.Store(false)
	close(release)
	waitOnline(t, reg, "dev", false)
	_, seq2, _ := wal.ParseEventID(id2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := db.GetDelivery("app", seq2)
		if err == nil && len(d.Attempts) >= 2 && d.Attempts[len(d.Attempts)-1].Error != "" {
			break // the in-flight attempt failed, and a retry while offline failed clearly
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt recorded while the agent was away: %+v %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runAgent(t, reg, "dev", "agent-secret", []string{appAddr})
	waitStatus(t, db, id2, wal.StatusDelivered)

	// Rotating the secret cuts the live session before Apply returns.
	if err := n.Apply(actors.Change{Agents: []model.Agent{{ID: "dev", AllowedTargets: []string{appAddr}, Secret: "rotated"}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitOnline(t, reg, "dev", false)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("rotation cut the session after %v", d)
	}
}

// TestConfiguredBeforeStart: agents and forwards known when the registry
// starts (a node restarting with its stored configuration) are served at
// once; a registry closed without starting closes cleanly; dialling with
// the tunnel off says so.
func TestConfiguredBeforeStart(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	appAddr := strings.TrimPrefix(app.URL, "http://")
	_, reg, _ := startNode(t, func(n *actors.Node) {
		if err := n.Apply(actors.Change{Agents: []model.Agent{{ID: "dev", AllowedTargets: []string{appAddr}, Secret: "s"}}}); err != nil {
			t.Fatal(err)
		}
	})
	runAgent(t, reg, "dev", "s", []string{appAddr})
	waitOnline(t, reg, "dev", true)

	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	idle := newRegistry(t, db)
	idle.Close()
	idle.Start() // after Close: serves nothing, returns

	if _, err := DialTunnelOff(context.Background(), "dev", appAddr); err == nil || !strings.Contains(err.Error(), "--tunnel-addr") {
		t.Fatalf("DialTunnelOff = %v", err)
	}
}

// TestReportsSessionsAndListeners: what a cluster member reports of its
// tunnel. Listeners says which forwards listen and why one cannot (its
// address taken) and retries it until it listens; Sessions lists the
// agent once it joined; the change callback hears each of these.
func TestReportsSessionsAndListeners(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	appAddr := strings.TrimPrefix(app.URL, "http://")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := freeTCP(t)
	var changes atomic.Int64
	n, reg, _ := startNode(t, func(n *actors.Node) {
		if err := n.Apply(actors.Change{Agents: []model.Agent{{ID: "dev", AllowedTargets: []string{appAddr}, Secret: "s"}}}); err != nil {
			t.Fatal(err)
		}
	})
	reg.SetOnChange(func() { changes.Add(1) })
	err = n.Apply(actors.Change{Forwards: []model.Forward{
		{Listen: free, Agent: "dev", Target: appAddr},
		{Listen: taken.Addr().String(), Agent: "dev", Target: appAddr},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ls := reg.Listeners()
	if len(ls) != 2 || ls[free] != "" || !strings.Contains(ls[taken.Addr().String()], "address already in use") {
		t.Fatalf("Listeners = %q", ls)
	}
	if changes.Load() == 0 {
		t.Fatal("a forward change was not heard")
	}
	if len(reg.Sessions()) != 0 {
		t.Fatalf("sessions before any agent: %+v", reg.Sessions())
	}
	before := changes.Load()
	runAgent(t, reg, "dev", "s", []string{appAddr})
	waitOnline(t, reg, "dev", true)
	if s := reg.Sessions(); len(s) != 1 || s[0].AgentID != "dev" {
		t.Fatalf("Sessions = %+v", s)
	}
	for deadline := time.Now().Add(5 * time.Second); changes.Load() == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session coming up was not heard")
		}
	}
	// Once its address is free, the forward that could not listen does,
	// and that is heard too.
	before = changes.Load()
	taken.Close()
	for deadline := time.Now().Add(5 * time.Second); reg.Listeners()[taken.Addr().String()] != "" || changes.Load() == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the forward never listened (and was heard) once its address was free: %q, %d changes", reg.Listeners(), changes.Load()-before)
		}
	}
	// Deleting the forwards empties Listeners.
	if err := n.Apply(actors.Change{DeleteForwards: []string{free, taken.Addr().String()}}); err != nil {
		t.Fatal(err)
	}
	if ls := reg.Listeners(); len(ls) != 0 {
		t.Fatalf("Listeners after deleting every forward = %q", ls)
	}
}

// freeTCP is a loopback address free to listen on now.
func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestListenWhileOnline: a cluster member's forward listens only while its
// agent has a session there: not before the agent joins, at once when it
// does, and no more once it leaves.
func TestListenWhileOnline(t *testing.T) {
	target := freeTCP(t) // nothing listens there; only the forward's port is checked
	listen := freeTCP(t)
	n, reg, _ := startNodeWith(t, func(n *actors.Node) {
		err := n.Apply(actors.Change{Agents: []model.Agent{{ID: "dev", AllowedTargets: []string{target}, Secret: "s"}},
			Forwards: []model.Forward{{Listen: listen, Agent: "dev", Target: target}}})
		if err != nil {
			t.Fatal(err)
		}
	}, func(c *Config) { c.ListenWhileOnline, c.RetryListen = true, time.Hour })
	_ = n
	listening := func() bool {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	if listening() || reg.Listeners()[listen] != noSession {
		t.Fatalf("listening before the agent joined: %q", reg.Listeners())
	}
	stop := runAgent(t, reg, "dev", "s", []string{target})
	waitOnline(t, reg, "dev", true)
	// RetryListen is an hour: only the session's event can start it.
	for deadline := time.Now().Add(5 * time.Second); !listening() || reg.Listeners()[listen] != ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the forward never listened once the agent joined: %q", reg.Listeners())
		}
	}
	stop()
	waitOnline(t, reg, "dev", false)
	for deadline := time.Now().Add(5 * time.Second); listening() || reg.Listeners()[listen] != noSession; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the forward still listened after the agent left: %q", reg.Listeners())
		}
	}
}
