package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/internal/testnode"
	"github.com/webhookops/webhookops/wal"
)

const adminToken = "whops_ui-test-admin-token-0123456789abcdef"

// node is a real node (Pebble in a temp dir) with its admin API and the UI
// mounted on one loopback server, and its ingest handler on another.
type node struct {
	t       *testing.T
	tn      *testnode.Node
	adm     *admin.Server
	ui      *UI
	srv     *httptest.Server // the admin listener: API, UI, docs
	in      *httptest.Server // ingest
	readTok string           // a read-only token
	clock   *testClock
}

type nodeOpts struct {
	tls  bool             // serve the admin listener over TLS
	seed func(db *wal.DB) // writes to the store before the admin server starts
	// tunnelMembers, when set, makes the node a cluster member's with this
	// tunnel directory.
	tunnelMembers func(context.Context) ([]admin.TunnelMember, error)
}

// testClock is the UI's clock, moved by hand to expire sessions.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func startNode(t *testing.T, o nodeOpts) *node {
	t.Helper()
	tn := testnode.Start(t, testnode.Options{Token: adminToken, Seed: o.seed, TunnelMembers: o.tunnelMembers,
		Tunnel: &admin.TunnelInfo{Addr: "gw.example:9700", Fingerprint: "sha256:00ff"}})
	e := &node{t: t, tn: tn, adm: tn.Admin, in: tn.Ingest, clock: &testClock{}}
	var err error
	e.ui, err = New(Config{Admin: tn.Admin, IngestURL: tn.Ingest.URL, Now: e.clock.now, IdleTimeout: 30 * time.Minute})
	if err != nil {
		tn.Close()
		t.Fatal(err)
	}
	tn.Admin.MountUI(e.ui)
	if o.tls {
		e.srv = httptest.NewTLSServer(tn.Admin)
	} else {
		e.srv = httptest.NewServer(tn.Admin)
	}
	t.Cleanup(func() {
		e.srv.Close()
		tn.Close()
	})
	var tok admin.CreatedToken
	e.api("POST", "/api/v1/tokens", map[string]any{"name": "viewer", "role": "read"}, &tok, http.StatusCreated)
	e.readTok = tok.Secret
	return e
}

// api calls the JSON API with the admin token and wants status.
func (e *node) api(method, path string, body, out any, want int) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// setup creates destination "app" at the sink and source "shop" routing
// to it, and returns the source's secret.
func (e *node) setup(sk *sink, maxAttempts int) string {
	e.t.Helper()
	e.api("POST", "/api/v1/destinations", map[string]any{"slug": "app", "url": sk.srv.URL + "/hook", "allow_private_network": true,
		"max_attempts": maxAttempts, "backoff_base": "10ms", "backoff_max": "20ms"}, nil, http.StatusCreated)
	var src admin.SourceOut
	e.api("POST", "/api/v1/sources", map[string]any{"slug": "shop", "provider": "generic", "routes": []map[string]any{{"destination": "app"}}}, &src, http.StatusCreated)
	return src.Secrets[0]
}

// ingest posts a signed webhook to source "shop" and returns its event id.
func (e *node) ingest(secret, key, eventType, body string) string {
	e.t.Helper()
	return e.tn.Send(e.t, "shop", secret, key, eventType, body)
}

func (e *node) event(id string) admin.EventOut {
	e.t.Helper()
	var ev admin.EventOut
	e.api("GET", "/api/v1/events/"+id, nil, &ev, http.StatusOK)
	return ev
}

// waitFor polls cond until it holds, failing after timeout.
var waitFor = testnode.Eventually

// sink is a receiver that can be told to fail.
type sink struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	got     map[string]int // webhook-id -> accepted deliveries
	lastReq *http.Request  // the last delivery accepted
}

func newSink(t *testing.T) *sink {
	s := &sink{got: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if s.failing.Load() {
			http.Error(w, "receiver is down for maintenance", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		s.got[r.Header.Get("Webhook-Id")]++
		s.lastReq = r
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastReq
}

func (s *sink) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.got {
		n += c
	}
	return n
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so a test sees each answer.
type browser struct {
	t *testing.T
	e *node
	c *http.Client
}

func (e *node) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: e.t, e: e, c: &c}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) answer {
	b.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.e.srv.URL+path, rd)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(raw)}
}

func (b *browser) get(path string) answer { return b.do("GET", path, nil, nil) }

func (b *browser) post(path string, form url.Values) answer {
	return b.do("POST", path, form, nil)
}

// login logs in with token and wants it to work.
func (b *browser) login(token string) {
	b.t.Helper()
	a := b.post("/ui/login", url.Values{"token": {token}, "next": {"/ui/"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		b.t.Fatalf("login: %d %s: %s", a.status, a.header.Get("Location"), a.body)
	}
}
