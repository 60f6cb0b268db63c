package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// received is what a test server saw of one request.
type received struct {
	host          string
	header        http.Header
	body          []byte
	contentLength int64
	transferEnc   []string
	path          string
}

// newRecorder starts a loopback server that records every request on the
// returned channel and answers with respond (200 "ok" when nil).
func newRecorder(t *testing.T, respond http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 256)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{
			host:          r.Host,
			header:        r.Header.Clone(),
			body:          body,
			contentLength: r.ContentLength,
			transferEnc:   r.TransferEncoding,
			path:          r.URL.Path,
		}
		if respond != nil {
			respond(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// newTestClient returns a client whose idle connections are closed when the
// test ends (before the servers it talked to, which were made earlier).
func newTestClient(t *testing.T, opts Options) *Client {
	c := NewClient(opts)
	t.Cleanup(c.CloseIdle)
	return c
}

// loopbackDest is a destination a loopback test server can be reached at.
func loopbackDest(url string) model.Destination {
	return model.Destination{Slug: "test", URL: url, AllowPrivateNetwork: true}
}

func recv(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("server received nothing")
		return received{}
	}
}

func TestDeliverHeaders(t *testing.T) {
	srv, got := newRecorder(t, nil)
	now := time.Unix(1_700_000_000, 0)
	c := newTestClient(t, Options{Now: func() time.Time { return now }, UserAgent: "WebhookOps-test/1"})

	secret, err := GenerateSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	d := loopbackDest(srv.URL + "/hook")
	d.SigningSecret = secret
	d.Headers = map[string]string{
		"X-Override":    "custom",
		"Authorization": "Bearer dest-token",
		"x-tenant":      "t1",
		"Webhook-Id":    "custom-cannot-override",
		"Connection":    "close", // ignored: hop-by-hop
	}
	body := []byte(`{"id":"evt_1","amount":42}`)
	r := Request{
		EventID: "evt_123",
		Attempt: 3,
		Body:    body,
		Headers: [][2]string{
			{"Connection", "keep-alive, X-Drop-Me"},
			{"X-Drop-Me", "1"},
			{"Keep-Alive", "timeout=5"},
			{"Proxy-Authorization", "Basic c2VjcmV0"},
			{"Proxy-Connection", "keep-alive"},
			{"TE", "trailers"},
			{"Trailer", "X-Checksum"},
			{"Transfer-Encoding", "chunked"},
			{"Upgrade", "websocket"},
			{"Host", "evil.example"},
			{"Content-Length", "999"},
			{"Expect", "100-continue"},
			{"Accept-Encoding", "gzip"},
			{"Content-Type", "application/json"},
			{"Stripe-Signature", "t=1,v1=abc"},
			{"x-multi", "1"},
			{"X-Multi", "2"},
			{"X-Override", "source"},
			{"webhook-id", "spoofed"},
			{"webhook-signature", "v1,spoofed"},
			{"X-Webhookops-Replay-Id", "spoofed"},
			{"User-Agent", "Stripe/1.0"},
			{"Bad Name", "x"},
			{"X-Bad-Value", "a\r\nInjected: 1"},
		},
	}
	res := c.Deliver(context.Background(), d, r)
	if !res.Success || res.StatusCode != 200 || res.Err != "" {
		t.Fatalf("result = %+v, want 200 success", res)
	}
	rec := recv(t, got)
	h := rec.header

	for _, name := range []string{
		"Connection", "X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection",
		"Te", "Trailer", "Upgrade", "Expect", "Accept-Encoding", "Bad Name", "X-Bad-Value",
		"Injected", "X-Webhookops-Replay-Id", "Idempotency-Key",
	} {
		if v, ok := h[name]; ok {
			t.Errorf("header %s = %q was forwarded", name, v)
		}
	}
	if want := srv.Listener.Addr().String(); rec.host != want {
		t.Errorf("Host = %q, want %q", rec.host, want)
	}
	if rec.contentLength != int64(len(body)) || rec.transferEnc != nil {
		t.Errorf("Content-Length %d, Transfer-Encoding %v; want %d and none", rec.contentLength, rec.transferEnc, len(body))
	}
	want := map[string][]string{
		"Content-Type":         {"application/json"},
		"Stripe-Signature":     {"t=1,v1=abc"},
		"X-Multi":              {"1", "2"},
		"X-Override":           {"custom"},
		"Authorization":        {"Bearer dest-token"},
		"X-Tenant":             {"t1"},
		"Webhook-Id":           {"evt_123"},
		"Webhook-Timestamp":    {"1700000000"},
		"X-Webhookops-Attempt": {"3"},
		"User-Agent":           {"WebhookOps-test/1"},
	}
	for name, vals := range want {
		if !slices.Equal(h[name], vals) {
			t.Errorf("header %s = %q, want %q", name, h[name], vals)
		}
	}

	// Verify the signature the way a receiver would, without Sign.
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), rec.body)
	wantSig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := h.Values("Webhook-Signature"); len(got) != 1 || got[0] != wantSig {
		t.Errorf("webhook-signature = %q, want %q", got, wantSig)
	}

	t.Run("replay and custom user agent", func(t *testing.T) {
		d := d
		d.Headers = map[string]string{"User-Agent": "Acme-Relay/2", "host": "app.example"}
		d.SigningSecret = ""
		r := Request{EventID: "evt_123", Attempt: 1, ReplayID: "rpl_9", Body: body}
		if res := c.Deliver(context.Background(), d, r); !res.Success {
			t.Fatalf("result = %+v", res)
		}
		rec := recv(t, got)
		h := rec.header
		if rec.host != "app.example" {
			t.Errorf("Host = %q, want the custom app.example", rec.host)
		}
		if v := h.Get("X-Webhookops-Replay-Id"); v != "rpl_9" {
			t.Errorf("replay id = %q, want rpl_9", v)
		}
		if v := h.Get("User-Agent"); v != "Acme-Relay/2" {
			t.Errorf("User-Agent = %q, want the custom one", v)
		}
		if v, ok := h["Webhook-Signature"]; ok {
			t.Errorf("signature %q sent without a signing secret", v)
		}
		if v := h.Get("Webhook-Id"); v != "evt_123" {
			t.Errorf("webhook-id = %q, want it stable across attempts", v)
		}
	})
}

func TestDeliverBodyByteExact(t *testing.T) {
	srv, got := newRecorder(t, nil)
	c := newTestClient(t, Options{})
	big := make([]byte, 1<<20)
	rand.Read(big)
	for name, body := range map[string][]byte{
		"empty":        {},
		"invalid utf8": {0xff, 0xfe, 0xfd, 0x00, 0xc3, 0x28, '\r', '\n', 0xed, 0xa0, 0x80},
		"1 MiB random": big,
	} {
		t.Run(name, func(t *testing.T) {
			res := c.Deliver(context.Background(), loopbackDest(srv.URL), Request{EventID: "e", Attempt: 1, Body: body})
			if !res.Success {
				t.Fatalf("result = %+v", res)
			}
			rec := recv(t, got)
			if !bytes.Equal(rec.body, body) {
				t.Fatalf("body differs: sent %d bytes, received %d", len(body), len(rec.body))
			}
			if rec.contentLength != int64(len(body)) {
				t.Fatalf("Content-Length = %d, want %d", rec.contentLength, len(body))
			}
		})
	}
}

func TestDeliverOutcomes(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(r.PathValue("code"), &code)
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/followed")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d", code)
	})
	mux.HandleFunc("/followed", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{})

	for _, tc := range []struct {
		code    int
		success bool
	}{
		{200, true}, {201, true}, {202, true}, {204, true}, {299, true},
		{301, false}, {302, false}, {307, false}, {308, false},
		{400, false}, {404, false}, {410, false}, {500, false}, {502, false},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			res := c.Deliver(context.Background(), loopbackDest(fmt.Sprintf("%s/status/%d", srv.URL, tc.code)), Request{EventID: "e", Attempt: 1})
			if res.Success != tc.success || res.StatusCode != tc.code || res.Err != "" {
				t.Fatalf("result = %+v, want status %d success %v", res, tc.code, tc.success)
			}
			if tc.code != 204 && string(res.Response) != fmt.Sprintf("status %d", tc.code) {
				t.Fatalf("response excerpt = %q", res.Response)
			}
			if res.Duration <= 0 {
				t.Fatalf("duration = %v", res.Duration)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("a redirect was followed %d times", n)
	}
}

func TestDeliverTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Once the body is read the server notices the client hanging up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.URL)
	d.Timeout = model.Duration(200 * time.Millisecond)

	res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1, Body: []byte("x")})
	if res.Success || res.StatusCode != 0 || !strings.Contains(res.Err, "timed out") {
		t.Fatalf("result = %+v, want a timeout", res)
	}
	if res.Duration < 200*time.Millisecond || res.Duration > 5*time.Second {
		t.Fatalf("duration = %v, want about the 200ms timeout", res.Duration)
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, Options{})
	res := c.Deliver(context.Background(), loopbackDest("http://"+addr+"/"), Request{EventID: "e", Attempt: 1})
	if res.Success || res.StatusCode != 0 || !strings.Contains(res.Err, "connection refused") {
		t.Fatalf("result = %+v, want connection refused", res)
	}
}

func TestDeliverCanceled(t *testing.T) {
	srv, _ := newRecorder(t, nil)
	c := newTestClient(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := c.Deliver(ctx, loopbackDest(srv.URL), Request{EventID: "e", Attempt: 1})
	if res.Success || !strings.Contains(res.Err, "canceled") {
		t.Fatalf("result = %+v, want canceled", res)
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(r.URL.Query().Get("code"), &code)
		if v := r.URL.Query().Get("ra"); v != "" {
			w.Header().Set("Retry-After", v)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{Now: func() time.Time { return now }})

	for _, tc := range []struct {
		name       string
		code       int
		retryAfter string
		want       time.Duration
	}{
		{"429 seconds", 429, "120", 120 * time.Second},
		{"503 seconds", 503, "7", 7 * time.Second},
		{"503 http-date", 503, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"429 http-date", 429, now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{"429 date in the past", 429, now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"429 zero", 429, "0", 0},
		{"429 negative", 429, "-5", 0},
		{"429 garbage", 429, "soon", 0},
		{"429 fraction", 429, "1.5", 0},
		{"429 huge", 429, "99999999999999999999999", time.Duration(maxRetryAfterSeconds) * time.Second},
		{"429 none", 429, "", 0},
		{"500 ignored", 500, "30", 0},
		{"200 ignored", 200, "30", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := fmt.Sprintf("%s/?code=%d&ra=%s", srv.URL, tc.code, urlQueryEscape(tc.retryAfter))
			res := c.Deliver(context.Background(), loopbackDest(u), Request{EventID: "e", Attempt: 1})
			if res.StatusCode != tc.code || res.RetryAfter != tc.want {
				t.Fatalf("status %d retry-after %v, want %d and %v", res.StatusCode, res.RetryAfter, tc.code, tc.want)
			}
		})
	}
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer(" ", "%20", ",", "%2C", ":", "%3A", "+", "%2B").Replace(s)
}

func TestDeliverResponseExcerpt(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write(big)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{})
	res := c.Deliver(context.Background(), loopbackDest(srv.URL), Request{EventID: "e", Attempt: 1})
	if res.StatusCode != 500 || len(res.Response) != ResponseExcerptLimit || !bytes.Equal(res.Response, big[:ResponseExcerptLimit]) {
		t.Fatalf("status %d, excerpt of %d bytes; want 500 and the first %d bytes", res.StatusCode, len(res.Response), ResponseExcerptLimit)
	}
}

// Steady delivery to one destination must reuse its connection, including
// when responses are longer than the excerpt (they are drained).
func TestDeliverReusesConnections(t *testing.T) {
	var conns atomic.Int32
	body := bytes.Repeat([]byte("x"), 10<<10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.URL)
	for i := range 20 {
		if res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint(i), Attempt: 1, Body: []byte("hi")}); !res.Success {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential deliveries opened %d connections, want 1", n)
	}
}

func TestDeliverTLSVerification(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newTestClient(t, Options{})

	d := loopbackDest(srv.URL)
	res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1})
	if res.Success || !strings.Contains(res.Err, "certificate") {
		t.Fatalf("self-signed certificate accepted with verify_tls default: %+v", res)
	}
	off := false
	d.VerifyTLS = &off
	if res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1, Body: []byte("x")}); !res.Success {
		t.Fatalf("verify_tls false: %+v", res)
	}
	if p := proto.Load(); p != "HTTP/2.0" {
		t.Fatalf("request arrived over %v, want HTTP/2.0 when the server offers it", p)
	}
}

// Many actors share one Client; transports are made once per combination.
func TestDeliverConcurrent(t *testing.T) {
	srv, got := newRecorder(t, nil)
	c := newTestClient(t, Options{})
	off := false
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			d := loopbackDest(srv.URL)
			if g%2 == 0 {
				d.VerifyTLS = &off
			}
			for i := range 10 {
				if res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint(g, i), Attempt: 1}); !res.Success {
					t.Errorf("%+v", res)
				}
			}
		})
	}
	wg.Wait()
	for range 80 {
		recv(t, got)
	}
	c.mu.Lock()
	n := len(c.transports) + len(c.pools)
	c.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d transports and pools for 2 combinations", n)
	}
}

func TestDeliverAgentMode(t *testing.T) {
	srv, got := newRecorder(t, nil)
	var mu sync.Mutex
	var dials []string
	agentDial := func(ctx context.Context, agentID, addr string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, agentID+" "+addr)
		mu.Unlock()
		if agentID == "offline" {
			return nil, errors.New("agent is offline")
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	c := newTestClient(t, Options{AgentDial: agentDial})

	// No allow_private_network: the agent's allow-list governs, not the guard.
	d := model.Destination{Slug: "private", URL: "http://billing.internal:8080/hook", Mode: model.ModeAgent, Agent: "office"}
	res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1, Body: []byte("hello")})
	if !res.Success {
		t.Fatalf("result = %+v", res)
	}
	rec := recv(t, got)
	if rec.host != "billing.internal:8080" || string(rec.body) != "hello" || rec.path != "/hook" {
		t.Fatalf("received host %q path %q body %q", rec.host, rec.path, rec.body)
	}
	mu.Lock()
	if !slices.Equal(dials, []string{"office billing.internal:8080"}) {
		t.Fatalf("agent dials = %q", dials)
	}
	mu.Unlock()

	d.Agent = "offline"
	res = c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1})
	if res.Success || !strings.Contains(res.Err, "agent is offline") {
		t.Fatalf("offline agent: %+v", res)
	}

	noDialer := newTestClient(t, Options{})
	res = noDialer.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1})
	if res.Success || res.Err != ErrNoAgentDialer.Error() {
		t.Fatalf("no agent dialer: %+v", res)
	}
}

// Whatever is stored in a destination, Deliver reports a failed attempt
// with a reason and never panics or echoes the URL (it may hold a token).
func TestDeliverBadDestinations(t *testing.T) {
	c := newTestClient(t, Options{AgentDial: func(context.Context, string, string) (net.Conn, error) {
		return nil, nil // a broken dialer
	}})
	for _, tc := range []struct {
		name string
		d    model.Destination
		want string
	}{
		{"empty url", model.Destination{}, ErrBadURL.Error()},
		{"not a url", model.Destination{URL: "::token=s3cret"}, ErrBadURL.Error()},
		{"space in host", model.Destination{URL: "http://exa mple.com/?token=s3cret"}, ErrBadURL.Error()},
		{"bad escape", model.Destination{URL: "http://example.com/%zz?token=s3cret"}, ErrBadURL.Error()},
		{"unclosed bracket", model.Destination{URL: "http://[::1/?token=s3cret"}, ErrBadURL.Error()},
		{"ftp", model.Destination{URL: "ftp://example.com/?token=s3cret"}, ErrBadURL.Error()},
		{"no host", model.Destination{URL: "http:///path?token=s3cret"}, ErrBadURL.Error()},
		{"port only", model.Destination{URL: "http://:80/?token=s3cret"}, ErrBadURL.Error()},
		{"relative", model.Destination{URL: "/hook?token=s3cret"}, ErrBadURL.Error()},
		{"credentials", model.Destination{URL: "https://user:s3cret@example.com/"}, ErrURLUserinfo.Error()},
		{"unknown mode", model.Destination{URL: "https://example.com/", Mode: "pigeon"}, `unknown destination mode "pigeon"`},
		{"agent without id", model.Destination{URL: "http://app:80/", Mode: model.ModeAgent}, ErrNoAgent.Error()},
		{"agent dialer returns nil", model.Destination{URL: "http://app:80/", Mode: model.ModeAgent, Agent: "a"}, "dialer returned no connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.Deliver(context.Background(), tc.d, Request{Attempt: -1, Headers: [][2]string{{"", ""}, {":", "\x00"}}})
			if res.Success || res.StatusCode != 0 || !strings.Contains(res.Err, tc.want) {
				t.Fatalf("result = %+v, want a failure containing %q", res, tc.want)
			}
			if strings.Contains(res.Err, "s3cret") {
				t.Fatalf("Err %q leaks the URL", res.Err)
			}
		})
	}
	t.Run("nil context", func(t *testing.T) {
		//lint:ignore SA1012 a nil context must not panic
		res := c.Deliver(nil, model.Destination{URL: "ftp://x/"}, Request{})
		if res.Err != ErrBadURL.Error() {
			t.Fatalf("result = %+v", res)
		}
	})
}

func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	c := NewClient(Options{})
	defer c.CloseIdle()
	d := loopbackDest(srv.URL + "/hook")
	d.SigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	d.Headers = map[string]string{"Authorization": "Bearer t"}
	r := Request{
		EventID: "evt_2Zb1Xq9mJ0c7",
		Attempt: 1,
		Body:    bytes.Repeat([]byte("a"), 1024),
		Headers: [][2]string{
			{"Content-Type", "application/json"},
			{"Stripe-Signature", "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"},
			{"User-Agent", "Stripe/1.0"},
			{"Accept", "*/*"},
		},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := c.Deliver(ctx, d, r); !res.Success {
			b.Fatalf("result = %+v", res)
		}
	}
}
