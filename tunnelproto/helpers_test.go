package tunnelproto

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	certOnce          sync.Once
	testCert, altCert tls.Certificate
)

// testCerts returns two distinct server certificates, made once.
func testCerts(t testing.TB) (tls.Certificate, tls.Certificate) {
	certOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tunnelproto-cert")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		var err1, err2 error
		testCert, _, err1 = LoadOrCreateCertificate(dir + "/a")
		altCert, _, err2 = LoadOrCreateCertificate(dir + "/b")
		if err1 != nil || err2 != nil {
			panic(errors.Join(err1, err2))
		}
	})
	return testCert, altCert
}

// memAuth is an in-memory Authenticator whose entries tests can change.
type memAuth struct {
	mu     sync.Mutex
	agents map[string]memAgent
}

type memAgent struct {
	secret  []byte
	allowed []string
}

func newMemAuth() *memAuth { return &memAuth{agents: make(map[string]memAgent)} }

func (a *memAuth) set(id, secret string, allowed ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.agents[id] = memAgent{secret: []byte(secret), allowed: allowed}
}

func (a *memAuth) Lookup(id string) ([]byte, []string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.agents[id]
	return e.secret, e.allowed, ok
}

// events records a server's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// wait returns the first event matching pred, waiting up to 5 s.
func (e *events) wait(t testing.TB, pred func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for _, ev := range e.all {
			if pred(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t.Fatalf("no matching event; got %+v", e.all)
	return Event{}
}

func (e *events) count(pred func(Event) bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if pred(ev) {
			n++
		}
	}
	return n
}

func kind(k EventKind, agent string) func(Event) bool {
	return func(e Event) bool { return e.Kind == k && e.AgentID == agent }
}

type testServer struct {
	*Server
	auth   *memAuth
	events *events
	fp     string
	tr     Transport // what clientConfig dials
}

// overTransports runs f as a subtest over QUIC and over TCP+TLS.
func overTransports(t *testing.T, f func(t *testing.T, tr Transport)) {
	for _, tr := range []Transport{TransportQUIC, TransportTCP} {
		t.Run(tr.String(), func(t *testing.T) { f(t, tr) })
	}
}

// startServerOver is startServer whose clientConfig dials over tr.
func startServerOver(t testing.TB, tr Transport, auth *memAuth, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	s := startServer(t, auth, mutate)
	s.tr = tr
	return s
}

func quietLogger() *slog.Logger {
	if os.Getenv("TUNNEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer runs a real server on 127.0.0.1; Cleanup closes it and waits.
func startServer(t testing.TB, auth *memAuth, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", auth, mutate)
}

func startServerAt(t testing.TB, addr string, auth *memAuth, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	cert, _ := testCerts(t)
	ev := &events{}
	cfg := ServerConfig{
		Addr:    addr,
		TLSCert: cert,
		Auth:    auth,
		OnEvent: ev.add,
		Logger:  quietLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, auth: auth, events: ev, fp: Fingerprint(cfg.TLSCert)}
}

func (ts *testServer) clientConfig(id, secret string) ClientConfig {
	return ClientConfig{
		Addr:              ts.Addr().String(),
		Transport:         ts.tr,
		AgentID:           id,
		Secret:            []byte(secret),
		ServerFingerprint: ts.fp,
		Logger:            quietLogger(),
		DrainTimeout:      2 * time.Second,
	}
}

// dialHandler is a minimal agent: allow list check, TCP dial, join.
func dialHandler(allow []string) Handler {
	return func(ctx context.Context, r *Request) {
		if !TargetAllowed(allow, r.Target) {
			r.Reject(CodeNotAllowed, r.Target+" is not in the agent's allow list")
			return
		}
		d := net.Dialer{Timeout: 5 * time.Second}
		tc, err := d.DialContext(ctx, "tcp", r.Target)
		if err != nil {
			r.Reject(CodeDialFailed, err.Error())
			return
		}
		sc, err := r.Accept()
		if err != nil {
			tc.Close()
			return
		}
		Join(sc, tc)
	}
}

type runningAgent struct {
	client *Client
	cancel context.CancelFunc
	done   chan error
}

// startAgent dials and serves; Cleanup stops it and waits.
func startAgent(t testing.TB, cfg ClientConfig, h Handler) *runningAgent {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("agent dial: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{client: c, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- c.Serve(ctx, h) }()
	t.Cleanup(func() { a.stop() })
	return a
}

// stop ends the agent and returns what Serve returned (once).
func (a *runningAgent) stop() error {
	a.cancel()
	err, ok := <-a.done
	if ok {
		close(a.done)
	}
	return err
}

// serverWithAgent starts a server over tr with agent-1 (secret "s3cret")
// allowed to reach target, and that agent online, serving with dialHandler.
func serverWithAgent(t testing.TB, tr Transport, target string) *testServer {
	t.Helper()
	auth := newMemAuth()
	auth.set("agent-1", "s3cret", target)
	s := startServerOver(t, tr, auth, nil)
	startAgent(t, s.clientConfig("agent-1", "s3cret"), dialHandler([]string{target}))
	waitOnline(t, s, "agent-1")
	return s
}

func waitOnline(t testing.TB, s *testServer, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ok, _ := s.Online(id); ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("agent %s not online", id)
}

// echoServer echoes every connection until its half-close.
func echoServer(t testing.TB) string {
	return tcpServer(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// tcpServer serves every connection on a loopback listener with handle,
// which must return when the peer is done; cleanup closes the listener and
// waits for the handlers.
func tcpServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func isCode(err error, code Code) bool {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Code == code
	}
	var ge *GoAwayError
	if errors.As(err, &ge) {
		return ge.Code == code
	}
	return false
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
