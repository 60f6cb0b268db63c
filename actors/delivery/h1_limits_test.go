package delivery

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// A receiver that answers with 1xx informational responses for ever fails
// the attempt once their headers pass maxResponseHeaderBytes altogether, as
// net/http's Transport counts them (one budget for every 1xx header and the
// final one), instead of holding the attempt for its whole timeout.
func TestDeliverEndlessInformationalResponses(t *testing.T) {
	srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		if !s.readRequest(br) {
			return
		}
		hint := "HTTP/1.1 103 Early Hints\r\nLink: </" + strings.Repeat("a", 200) + ".css>; rel=preload\r\n\r\n"
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
			if _, err := io.WriteString(c, hint); err != nil {
				return
			}
		}
	})
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.url())
	d.Timeout = model.Duration(3 * time.Second)
	res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1})
	if res.Success || res.StatusCode != 0 || !strings.Contains(res.Err, "exceeded") {
		t.Fatalf("result %+v, want the header limit's error", res)
	}
}

// The destination's timeout covers every phase of an attempt on a pooled
// connection: writing a body the receiver never reads, waiting for the
// answer, and reading a body the receiver dribbles out.
func TestDeliverTimeoutCoversEveryPhase(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name     string
		body     int
		serve    func(c net.Conn, br *bufio.Reader)
		wantCode int // 0: a timeout error
	}{
		{"write", 64 << 20, func(c net.Conn, br *bufio.Reader) {
			time.Sleep(1500 * time.Millisecond) // never reads the body
		}, 0},
		{"answer", 1, func(c net.Conn, br *bufio.Reader) {
			if req, err := http.ReadRequest(br); err == nil {
				io.Copy(io.Discard, req.Body)
				br.ReadByte() // never answers; returns when the client hangs up
			}
		}, 0},
		{"body", 1, func(c net.Conn, br *bufio.Reader) {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
			for range 30 {
				if _, err := io.WriteString(c, "z"); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, _ *rawServer) { tc.serve(c, br) })
			c := newTestClient(t, Options{})
			d := loopbackDest(srv.url())
			d.Timeout = model.Duration(timeout)
			res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1, Body: make([]byte, tc.body)})
			if tc.wantCode == 0 && (res.StatusCode != 0 || !strings.Contains(res.Err, "timed out")) {
				t.Fatalf("result %+v, want a timeout", res)
			}
			if tc.wantCode != 0 && res.StatusCode != tc.wantCode {
				t.Fatalf("result %+v, want status %d", res, tc.wantCode)
			}
			// Generous: the point is that the attempt ends near its
			// timeout, not seconds later when the receiver gives up.
			if res.Duration > timeout+2*time.Second {
				t.Fatalf("attempt took %v with a %v timeout", res.Duration, timeout)
			}
		})
	}
}

// 204 and 304 carry no body: the answer ends at its header and the
// connection is reused, not read until it closes.
func TestDeliverNoBodyStatuses(t *testing.T) {
	for _, code := range []int{204, 304} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
				for s.readRequest(br) {
					fmt.Fprintf(c, "HTTP/1.1 %d %s\r\n\r\n", code, http.StatusText(code))
				}
			})
			c := newTestClient(t, Options{})
			d := loopbackDest(srv.url())
			d.Timeout = model.Duration(5 * time.Second)
			for i := range 3 {
				res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint(i), Attempt: 1})
				if res.StatusCode != code || res.Err != "" || len(res.Response) != 0 || res.Duration > 2*time.Second {
					t.Fatalf("attempt %d: %+v", i, res)
				}
			}
			if n := srv.conns.Load(); n != 1 {
				t.Fatalf("3 attempts over %d connections, want 1", n)
			}
		})
	}
}

// A connection dialled for a destination that allows private networks is
// never handed to one that does not: the second destination, same name and
// port, is refused at its own dial.
func TestDeliverPoolsApartByGuardSetting(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	resolver := newTestResolver(t, dnsRecords{"loop.internal.test.": {netip.MustParseAddr("127.0.0.1")}})
	c := newTestClient(t, Options{Resolver: resolver})
	url := "http://loop.internal.test:" + port + "/"
	allowed := model.Destination{Slug: "a", URL: url, AllowPrivateNetwork: true}
	if res := c.Deliver(context.Background(), allowed, Request{EventID: "e", Attempt: 1}); !res.Success {
		t.Fatalf("allowed: %+v", res)
	}
	refused := model.Destination{Slug: "b", URL: url}
	res := c.Deliver(context.Background(), refused, Request{EventID: "e", Attempt: 1})
	if res.Success || !strings.Contains(res.Err, "is loopback") {
		t.Fatalf("refused: %+v, want the guard's refusal", res)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("receiver reached %d times, want once", n)
	}
}

// Proxy settings in the environment are never used, on either path: a
// proxy would dial for us, around the guard.
func TestDeliverIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { proxied.Add(1) }))
	t.Cleanup(proxy.Close)
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	plain, got := newRecorder(t, nil)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	c := newTestClient(t, Options{})
	if res := c.Deliver(context.Background(), loopbackDest(plain.URL), Request{EventID: "e", Attempt: 1}); !res.Success {
		t.Fatalf("plain http: %+v", res)
	}
	recv(t, got)
	d := loopbackDest(tlsSrv.URL)
	off := false
	d.VerifyTLS = &off
	if res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1}); !res.Success {
		t.Fatalf("https: %+v", res)
	}
	if n := proxied.Load(); n != 0 {
		t.Fatalf("the environment's proxy got %d requests", n)
	}
}

// A destination URL whose host is an international name is dialled by its
// punycode form, also when a custom Host header is plain ASCII (which alone
// would let the attempt take the pool).
func TestDeliverInternationalURLHost(t *testing.T) {
	srv, got := newRecorder(t, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	resolver := newTestResolver(t, dnsRecords{"xn--bcher-kva.test.": {netip.MustParseAddr("127.0.0.1")}})
	c := newTestClient(t, Options{Resolver: resolver})
	for _, host := range []string{"", "plain.example"} {
		d := loopbackDest("http://bücher.test:" + port + "/hook")
		if host != "" {
			d.Headers = map[string]string{"Host": host}
		}
		if res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1}); !res.Success {
			t.Fatalf("custom Host %q: %+v", host, res)
		}
		want := host
		if want == "" {
			want = "xn--bcher-kva.test:" + port
		}
		if h := recv(t, got).host; h != want {
			t.Fatalf("Host %q, want %q", h, want)
		}
	}
}

// CR or LF in a destination's custom header, name or value, or in its
// custom Host, never reaches the wire: the header is dropped.
func TestDeliverCustomHeaderInjection(t *testing.T) {
	srv, got := newRecorder(t, nil)
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.URL)
	d.Headers = map[string]string{
		"X-Value":            "a\r\nX-Injected: 1",
		"X-Lf":               "a\nX-Injected: 2",
		"X-Name\r\nInjected": "3",
		"Host":               "app.example\r\nX-Injected: 4",
		"X-Kept":             "ok",
	}
	if res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1}); !res.Success {
		t.Fatalf("%+v", res)
	}
	rec := recv(t, got)
	for name := range rec.header {
		if strings.Contains(name, "Injected") || name == "X-Value" || name == "X-Lf" {
			t.Errorf("header %s = %q reached the receiver", name, rec.header[name])
		}
	}
	if rec.header.Get("X-Kept") != "ok" || rec.host != srv.Listener.Addr().String() {
		t.Fatalf("header %v, Host %q", rec.header, rec.host)
	}
}

// A status code below 100 is a malformed answer: the attempt fails with an
// error saying so, never with neither a status nor an error.
func TestDeliverMalformedStatusCode(t *testing.T) {
	for _, code := range []string{"000", "099"} {
		t.Run(code, func(t *testing.T) {
			srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
				for s.readRequest(br) {
					io.WriteString(c, "HTTP/1.1 "+code+" Odd\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			c := newTestClient(t, Options{})
			res := c.Deliver(context.Background(), loopbackDest(srv.url()), Request{EventID: "e", Attempt: 1})
			if res.Success || res.StatusCode != 0 || res.Err != "malformed HTTP response: status code "+code {
				t.Fatalf("result %+v, want the malformed status's error", res)
			}
		})
	}
}

// The timeout covers resolving and connecting too: a name server that
// never answers ends the attempt at its timeout, as a timeout.
func TestDeliverTimeoutCoversResolving(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	// The resolver's lookup outlives the attempt (net's lookups run on
	// with its own timeouts, detached from the caller's deadline): end
	// it with the test, its connections closed and no new ones.
	var (
		mu    sync.Mutex
		done  bool
		conns []net.Conn
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		for _, c := range conns {
			c.Close()
		}
		silent.Close()
	})
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return nil, net.ErrClosed
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", silent.LocalAddr().String())
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}}
	c := newTestClient(t, Options{Resolver: resolver})
	d := model.Destination{Slug: "d", URL: "http://hooks.example.test/", Timeout: model.Duration(300 * time.Millisecond)}
	res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1})
	if res.StatusCode != 0 || !strings.Contains(res.Err, "timed out") {
		t.Fatalf("result %+v, want a timeout", res)
	}
	if res.Duration > 2300*time.Millisecond {
		t.Fatalf("attempt took %v with a 300ms timeout", res.Duration)
	}
}
