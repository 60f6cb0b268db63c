package agentd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/webhookops/webhookops/tunnelproto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// auth is an in-memory tunnelproto.Authenticator.
type auth struct {
	mu      sync.Mutex
	secret  string
	allowed []string
}

func (a *auth) Lookup(id string) ([]byte, []string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id != "agent-1" {
		return nil, nil, false
	}
	return []byte(a.secret), a.allowed, true
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t      *testing.T
	dir    string
	auth   *auth
	noQUIC bool // the server listens on TCP only, as if UDP were blocked
	srv    *tunnelproto.Server
	addr   string
	fp     string
	done   chan error
}

func newEnv(t *testing.T, allowed ...string) *env {
	e := &env{t: t, dir: t.TempDir(), auth: &auth{secret: "s3cret", allowed: allowed}}
	e.start("127.0.0.1:0")
	t.Cleanup(e.stop)
	return e
}

// start runs a tunnel server on addr with the identity kept in e.dir, so a
// restart presents the same certificate.
func (e *env) start(addr string) {
	e.t.Helper()
	cert, fp, err := tunnelproto.LoadOrCreateCertificate(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	srv, err := tunnelproto.NewServer(tunnelproto.ServerConfig{
		Addr: addr, TLSCert: cert, Auth: e.auth, Logger: slog.New(slog.DiscardHandler), DisableQUIC: e.noQUIC,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.addr, e.fp = srv, srv.Addr().String(), fp
	e.done = make(chan error, 1)
	go func() { e.done <- srv.Serve(context.Background()) }()
}

func (e *env) stop() {
	if e.srv == nil {
		return
	}
	e.srv.Close()
	<-e.done
	e.srv = nil
}

func (e *env) config(allow ...string) Config {
	return Config{
		Tunnels: []Endpoint{{Addr: e.addr, Fingerprint: e.fp}}, ID: "agent-1", Secret: "s3cret", Allow: allow,
		Logger:     slog.New(slog.DiscardHandler),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		DrainTimeout: 2 * time.Second,
	}
}

// run starts the agent; Cleanup stops it and checks Run's result.
func (e *env) run(cfg Config) (stop func()) {
	e.t.Helper()
	a, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.runAgent(a)
}

// runAgent runs a; Cleanup stops it and checks Run's result.
func (e *env) runAgent(a *Agent) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				e.t.Error("Run did not return after its context ended")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// post sends body to url through the agent and returns the answer's body.
func (e *env) post(url, body string) string {
	e.t.Helper()
	tr := e.srv.Transport("agent-1")
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (e *env) waitOnline() {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok, _ := e.srv.Online("agent-1"); ok {
			return
		}
	}
	e.t.Fatal("agent not online")
}

func TestHTTPThroughAgent(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s on %s", b, r.URL.Path)
	}))
	defer app.Close()
	target := app.Listener.Addr().String()
	e := newEnv(t, target)
	e.run(e.config(target))
	e.waitOnline()

	if body := e.post(app.URL+"/hooks", "evt_1"); body != "got evt_1 on /hooks" {
		t.Fatalf("body %q", body)
	}
}

// TestJoinsOverTCPWhenUDPIsBlocked: the gateway's UDP port answers nothing
// (only its TCP listener is up); the agent, on the default transport,
// falls back to TCP+TLS and delivers an HTTP request and a raw TCP forward.
func TestJoinsOverTCPWhenUDPIsBlocked(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	defer app.Close()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echoWG sync.WaitGroup
	echoWG.Go(func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	defer func() { echo.Close(); echoWG.Wait() }()
	targets := []string{app.Listener.Addr().String(), echo.Addr().String()}

	e := &env{t: t, dir: t.TempDir(), auth: &auth{secret: "s3cret", allowed: targets}, noQUIC: true}
	e.start("127.0.0.1:0")
	t.Cleanup(e.stop)
	logs := &syncBuffer{}
	cfg := e.config(targets...)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if cfg.Transport != tunnelproto.TransportAuto {
		t.Fatalf("default transport %v, want auto", cfg.Transport)
	}
	e.run(cfg)
	e.waitOnline()
	if s := e.srv.Sessions(); len(s) != 1 || s[0].Transport != tunnelproto.TransportTCP {
		t.Fatalf("sessions %+v, want one over tcp", s)
	}
	waitLog := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("log lacks %q:\n%s", want, logs)
			}
		}
	}
	waitLog("transport=tcp dialed=auto")

	if body := e.post(app.URL+"/hooks", "evt_1"); body != "got evt_1" {
		t.Fatalf("HTTP body %q", body)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var fwd sync.WaitGroup
	fwd.Go(func() { e.srv.Forward(ctx, ln, "agent-1", echo.Addr().String()) })
	defer func() { cancel(); fwd.Wait() }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("raw bytes "), 100_000)
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("forward echoed %d bytes (%v), sent %d", len(got), err, len(msg))
	}

	// After a server restart the agent goes straight to TCP.
	addr := e.addr
	e.stop()
	e.start(addr)
	e.waitOnline()
	waitLog("transport=tcp dialed=tcp")
}

func TestTransportFor(t *testing.T) {
	now := time.Now()
	cases := []struct {
		configured tunnelproto.Transport
		fellBackAt time.Time
		want       tunnelproto.Transport
	}{
		{tunnelproto.TransportAuto, time.Time{}, tunnelproto.TransportAuto},
		{tunnelproto.TransportAuto, now.Add(-time.Minute), tunnelproto.TransportTCP},
		{tunnelproto.TransportAuto, now.Add(-quicRetryAfter), tunnelproto.TransportAuto}, // time to try QUIC again
		{tunnelproto.TransportQUIC, now.Add(-time.Minute), tunnelproto.TransportQUIC},
		{tunnelproto.TransportTCP, time.Time{}, tunnelproto.TransportTCP},
	}
	for _, c := range cases {
		if got := transportFor(c.configured, c.fellBackAt, now); got != c.want {
			t.Errorf("transportFor(%v, fell back %v ago) = %v, want %v", c.configured, now.Sub(c.fellBackAt), got, c.want)
		}
	}
}

// TestAllowListEnforcedByAgent: the server would allow the target, the agent
// does not, so the agent refuses it.
func TestAllowListEnforcedByAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	forbidden := ln.Addr().String()
	e := newEnv(t, forbidden, "127.0.0.1:9")
	e.run(e.config("127.0.0.1:9"))
	e.waitOnline()
	_, err = e.srv.Dial(context.Background(), "agent-1", tunnelproto.KindTCP, forbidden)
	if !errors.Is(err, tunnelproto.ErrTargetNotAllowed) || !strings.Contains(err.Error(), "agent's allow list") {
		t.Fatalf("err = %v, want the agent's refusal", err)
	}
	// And a dial failure on an allowed target comes back with its reason.
	_, err = e.srv.Dial(context.Background(), "agent-1", tunnelproto.KindTCP, "127.0.0.1:9")
	if !errors.Is(err, tunnelproto.ErrDialFailed) {
		t.Fatalf("err = %v, want ErrDialFailed", err)
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	e := newEnv(t)
	logs := &syncBuffer{}
	cfg := e.config()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	e.run(cfg)
	e.waitOnline()
	addr := e.addr
	for i := range 2 {
		e.stop()
		e.start(addr)
		start := time.Now()
		e.waitOnline()
		t.Logf("restart %d: back online after %v", i, time.Since(start).Round(time.Millisecond))
	}
	if !strings.Contains(logs.String(), "session ended; reconnecting") || !strings.Contains(logs.String(), "server is restarting") {
		t.Fatalf("reconnect reason not logged:\n%s", logs)
	}
}

func TestRefusedIsLoggedAndRetried(t *testing.T) {
	e := newEnv(t)
	logs := &syncBuffer{}
	cfg := e.config()
	cfg.Secret = "wrong"
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	stop := e.run(cfg)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "authentication failed") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	out := logs.String()
	if strings.Count(out, "authentication failed") < 2 || !strings.Contains(out, "check --id and --secret") {
		t.Fatalf("want repeated, explained refusals; logs:\n%s", out)
	}
	if strings.Contains(out, "wrong") && strings.Contains(out, "secret=wrong") {
		t.Fatal("secret logged")
	}
}

func TestPinMismatchRefused(t *testing.T) {
	e := newEnv(t)
	_, otherFP, err := tunnelproto.LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := e.config()
	cfg.Tunnels[0].Fingerprint = otherFP
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	stop := e.run(cfg)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "does not match the pinned fingerprint") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if !strings.Contains(logs.String(), "does not match the pinned fingerprint") {
		t.Fatalf("pin mismatch not logged:\n%s", logs)
	}
	if ok, _ := e.srv.Online("agent-1"); ok {
		t.Fatal("agent connected to a server it does not trust")
	}
}

// TestDrainOnShutdown: a request in flight when the agent is told to stop
// still completes.
func TestDrainOnShutdown(t *testing.T) {
	started := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("done"))
	}))
	defer app.Close()
	target := app.Listener.Addr().String()
	e := newEnv(t, target)
	stop := e.run(e.config(target))
	e.waitOnline()

	tr := e.srv.Transport("agent-1")
	defer tr.CloseIdleConnections()
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get(app.URL + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	<-started
	begin := time.Now()
	stop()
	if d := time.Since(begin); d > time.Second {
		// DrainTimeout is 2 s: the drain must end when the request does,
		// not wait for idle keep-alive streams to time out.
		t.Errorf("drain took %v", d)
	}
	r := <-res
	if r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(time.Second, 30*time.Second)
	var prevMax time.Duration
	for i := range 20 {
		d := b.next()
		if d < time.Second || d > 30*time.Second {
			t.Fatalf("wait %d = %v, outside [1s, 30s]", i, d)
		}
		if i == 0 && d > 2*time.Second {
			t.Fatalf("first wait %v, want at most 2s", d)
		}
		if i >= 5 && d < 15*time.Second {
			t.Fatalf("wait %d = %v: the cap's jitter band is [15s, 30s]", i, d)
		}
		prevMax = max(prevMax, d)
	}
	b.reset()
	if d := b.next(); d > 2*time.Second {
		t.Fatalf("after reset: %v", d)
	}
	// Jitter: many agents do not all pick the same wait.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[newBackoff(time.Second, 30*time.Second).next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct first waits in 50 agents", len(seen))
	}
}

func TestConfigValidate(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	good := Config{Tunnels: []Endpoint{{Addr: "gw:7443", Fingerprint: pin}, {Addr: "gw2:7443", Fingerprint: pin}}, ID: "a", Secret: "s", Allow: []string{"localhost:3000"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"Tunnels":            func(c *Config) { c.Tunnels = []Endpoint{{Addr: "gw", Fingerprint: pin}} },
		"Tunnels is empty":   func(c *Config) { c.Tunnels = nil },
		"listed twice":       func(c *Config) { c.Tunnels = []Endpoint{c.Tunnels[0], c.Tunnels[0]} },
		"ID":                 func(c *Config) { c.ID = "" },
		"Secret":             func(c *Config) { c.Secret = "" },
		"fingerprint of gw2": func(c *Config) { c.Tunnels = []Endpoint{c.Tunnels[0], {Addr: "gw2:7443", Fingerprint: "md5:00"}} },
		"Allow":              func(c *Config) { c.Allow = []string{"localhost"} },
		"MaxBackoff":         func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second },
	}
	for field, mutate := range cases {
		c := good
		mutate(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig naming the field", field, err)
		}
	}
}

// TestImportGraph: agentd ships as a small binary; it must never link
// Pebble or protoactor-go.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/webhookops/webhookops/cmd/agentd").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, forbidden := range []string{"github.com/cockroachdb/pebble", "github.com/asynkron/protoactor-go"} {
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, forbidden) {
				t.Errorf("cmd/agentd depends on %s", dep)
			}
		}
	}
	if !strings.Contains(string(out), "github.com/webhookops/webhookops/agentd") {
		t.Fatalf("go list output does not look right:\n%s", out)
	}
}
