package actors

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

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/agentd"
	"github.com/webhookops/webhookops/tunnelproto"
	"github.com/webhookops/webhookops/wal"
)

// runAgent runs an in-process agentd until the returned stop is called.
func runAgent(t *testing.T, a *Agents, id, secret string, allow []string) (stop func()) {
	t.Helper()
	cfg := agentd.DefaultConfig()
	cfg.Tunnel, cfg.ID, cfg.Secret = a.Addr().String(), id, secret
	cfg.ServerFingerprint = a.Fingerprint()
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

func waitOnline(t *testing.T, a *Agents, id string, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if on, _ := a.Online(id); on == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s online never became %v", id, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
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

	var agents atomic.Pointer[Agents]
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := Start(Config{
		DB: db,
		Deliverer: delivery.NewClient(delivery.Options{AgentDial: func(ctx context.Context, id, addr string) (net.Conn, error) {
			return agents.Load().Dial(ctx, id, addr)
		}}),
		OnChange: func(old, next *Snapshot) {
			if a := agents.Load(); a != nil {
				a.ConfigChanged(old, next)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cert, _, err := tunnelproto.LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tcfg := tunnelproto.DefaultServerConfig()
	tcfg.Addr, tcfg.TLSCert = "127.0.0.1:0", cert
	a, err := n.StartAgents(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	agents.Store(a)

	err = n.Apply(Change{
		Agents:  []model.Agent{{ID: "dev", AllowedTargets: []string{appAddr}, Secret: "agent-secret"}},
		Sources: []model.Source{{Slug: "src", Provider: "generic", Verify: "none", Routes: []model.Route{{Destination: "app"}}}},
		Destinations: []model.Destination{{Slug: "app", URL: app.URL + "/hooks", Mode: "agent", Agent: "dev",
			BackoffBase: model.Duration(50 * time.Millisecond), BackoffMax: model.Duration(100 * time.Millisecond), MaxAttempts: 50,
			Headers: map[string]string{"X-Team": "payments"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, a, "dev", "agent-secret", []string{appAddr})
	waitOnline(t, a, "dev", true)

	tn := &testNode{Node: n, db: db}
	id := tn.ingest(t, "src", "k1", `{"hello":"agent"}`).EventID
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
	waitStatus(t, tn, id, wal.StatusDelivered)

	// Kill the agent mid-delivery.
	hold.Store(true)
	id2 := tn.ingest(t, "src", "k2", "second").EventID
	time.Sleep(200 * time.Millisecond)
	stop()
	hold.Store(false)
	close(release)
	waitOnline(t, a, "dev", false)
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
	runAgent(t, a, "dev", "agent-secret", []string{appAddr})
	waitStatus(t, tn, id2, wal.StatusDelivered)

	// Rotating the secret cuts the live session within a second.
	if err := n.Apply(Change{Agents: []model.Agent{{ID: "dev", AllowedTargets: []string{appAddr}, Secret: "rotated"}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitOnline(t, a, "dev", false)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("rotation cut the session after %v", d)
	}
}
