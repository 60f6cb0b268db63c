package delivery

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is a loopback HTTP/1.1 receiver written by hand, to answer in
// ways net/http's server never does. serve runs once per connection, with
// the connection's number (from 1); it returns when it is done with it.
type rawServer struct {
	ln       net.Listener
	conns    atomic.Int32
	requests atomic.Int32
	wg       sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(n int32, c net.Conn, br *bufio.Reader, s *rawServer)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.conns.Add(1)
			s.wg.Go(func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c), s)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/hook" }

// readRequest reads one request with its body, counting it.
func (s *rawServer) readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, req.Body)
	s.requests.Add(1)
	return true
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// A receiver that closes a keep-alive connection after answering (its idle
// timeout, say) must not cost a failed attempt: the next attempt finds the
// pooled connection dead before any answer and goes out once more on a new
// one, and the receiver sees each request once.
func TestDeliverResendsOnAClosedKeepAlive(t *testing.T) {
	srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		if s.readRequest(br) {
			io.WriteString(c, okResponse)
		}
	})
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.url())
	for i := range 3 {
		if res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint(i), Attempt: 1, Body: []byte("hi")}); !res.Success {
			t.Fatalf("attempt %d: %+v", i, res)
		}
		time.Sleep(20 * time.Millisecond) // the receiver's close arrives
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("receiver saw %d requests for 3 attempts", n)
	}
}

// Once an answer has begun, a broken connection fails the attempt: the
// request is not sent again behind the actor's back.
func TestDeliverNoResendAfterAnAnswerBegan(t *testing.T) {
	srv := newRawServer(t, func(n int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		for s.readRequest(br) {
			if n == 1 && s.requests.Load() == 1 {
				io.WriteString(c, okResponse) // the first attempt succeeds, keep-alive
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le") // then it breaks mid-header
			return
		}
	})
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.url())
	if res := c.Deliver(context.Background(), d, Request{EventID: "a", Attempt: 1}); !res.Success {
		t.Fatalf("first attempt: %+v", res)
	}
	res := c.Deliver(context.Background(), d, Request{EventID: "b", Attempt: 1})
	if res.Success || res.StatusCode != 0 || res.Err == "" {
		t.Fatalf("second attempt: %+v, want a failure", res)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("receiver saw %d requests, want 2 (none sent again)", n)
	}
}

// A response header larger than maxResponseHeaderBytes fails the attempt
// without being buffered whole.
func TestDeliverResponseHeaderLimit(t *testing.T) {
	srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		if !s.readRequest(br) {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Pad: " + strings.Repeat("a", 1000) + "\r\n"
		for range 1000 { // about 1 MB of header
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	c := newTestClient(t, Options{})
	res := c.Deliver(context.Background(), loopbackDest(srv.url()), Request{EventID: "e", Attempt: 1})
	if res.Success || res.StatusCode != 0 || !strings.Contains(res.Err, "exceeded") {
		t.Fatalf("result %+v, want the header limit's error", res)
	}
}

// 1xx informational answers come before the real one and are skipped.
func TestDeliverSkipsInformationalResponses(t *testing.T) {
	srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		for s.readRequest(br) {
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\nsure")
		}
	})
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.url())
	for i := range 2 {
		res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint(i), Attempt: 1})
		if !res.Success || res.StatusCode != 202 || string(res.Response) != "sure" {
			t.Fatalf("attempt %d: %+v, want 202 \"sure\"", i, res)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want the one reused", n)
	}
}

// Bodies framed by chunks keep the connection; a body that runs to the
// connection's close does not, and neither does one longer than the
// excerpt and the drain together.
func TestDeliverConnectionReuseByFraming(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response string
		conns    int32
	}{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 1},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nok", 3},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 3},
		{"longer than the drain", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
			ResponseExcerptLimit+drainLimit+10, strings.Repeat("z", ResponseExcerptLimit+drainLimit+10)), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
				for s.readRequest(br) {
					io.WriteString(c, tc.response)
					if !strings.Contains(tc.response, "Length") && !strings.Contains(tc.response, "chunked") {
						return // the body ends where the connection does
					}
				}
			})
			c := newTestClient(t, Options{})
			d := loopbackDest(srv.url())
			for i := range 3 {
				if res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint(i), Attempt: 1}); !res.Success {
					t.Fatalf("attempt %d: %+v", i, res)
				}
			}
			if n := srv.conns.Load(); n != tc.conns {
				t.Fatalf("3 attempts over %d connections, want %d", n, tc.conns)
			}
		})
	}
}

// An attempt cancelled while it waits for its answer leaves nothing behind
// in the pool: the next attempt to the same receiver succeeds.
func TestDeliverCancelledAttemptLeavesThePoolClean(t *testing.T) {
	release := make(chan struct{})
	srv := newRawServer(t, func(n int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		for s.readRequest(br) {
			if s.requests.Load() == 2 {
				<-release // the second attempt never gets its answer in time
				return
			}
			io.WriteString(c, okResponse)
		}
	})
	defer close(release)
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.url())
	if res := c.Deliver(context.Background(), d, Request{EventID: "a", Attempt: 1}); !res.Success {
		t.Fatalf("first: %+v", res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if res := c.Deliver(ctx, d, Request{EventID: "b", Attempt: 1}); res.Success || !strings.Contains(res.Err, "canceled") {
		t.Fatalf("cancelled: %+v", res)
	}
	for i := range 3 {
		if res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint("c", i), Attempt: 1}); !res.Success {
			t.Fatalf("after the cancel, attempt %d: %+v", i, res)
		}
	}
}

// The pool writes a request as net/http's Request.Write does (header names
// aside, whose order it does not keep): a receiver parses the same thing.
func TestOutgoingWritesWhatRequestWriteDoes(t *testing.T) {
	header := http.Header{
		"Content-Type":       {"application/json"},
		"X-Multi":            {"1", "2"},
		"X-Spaced":           {"  padded\t"},
		"X-Broken":           {"a\r\nInjected: 1"},
		"Webhook-Id":         {"evt_1"},
		"User-Agent":         {"WebhookOps"},
		hdrIdempotencyKey:    nil,
		"X-Webhookops-Empty": {""},
	}
	for _, tc := range []struct {
		name, target, host string
		body               string
	}{
		{"body", "/hook?a=1&b=%20", "127.0.0.1:8080", `{"id":1}`},
		{"empty body", "/", "app.example", ""},
		{"ipv6", "/x", "[::1]:9", "z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ours, theirs strings.Builder
			bw := bufio.NewWriter(&ours)
			out := outgoing{target: tc.target, host: tc.host, header: header, body: []byte(tc.body)}
			if err := out.write(bw); err != nil || bw.Flush() != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodPost, "http://"+tc.host+tc.target, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = header
			if err := req.Write(&theirs); err != nil {
				t.Fatal(err)
			}
			a, err := http.ReadRequest(bufio.NewReader(strings.NewReader(ours.String())))
			if err != nil {
				t.Fatalf("ours does not parse: %v\n%s", err, ours.String())
			}
			b, err := http.ReadRequest(bufio.NewReader(strings.NewReader(theirs.String())))
			if err != nil {
				t.Fatal(err)
			}
			ab, _ := io.ReadAll(a.Body)
			bb, _ := io.ReadAll(b.Body)
			if a.Method != b.Method || a.RequestURI != b.RequestURI || a.Host != b.Host || a.ContentLength != b.ContentLength ||
				string(ab) != string(bb) || fmt.Sprint(a.TransferEncoding) != fmt.Sprint(b.TransferEncoding) {
				t.Fatalf("ours:\n%s\nRequest.Write:\n%s", ours.String(), theirs.String())
			}
			if fmt.Sprint(a.Header) != fmt.Sprint(b.Header) { // fmt prints maps sorted
				t.Fatalf("header %v, Request.Write's %v", a.Header, b.Header)
			}
		})
	}
}

// A Host that is not plain ASCII goes out as net/http cleans it (punycode).
func TestDeliverInternationalHost(t *testing.T) {
	srv, got := newRecorder(t, nil)
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.URL)
	d.Headers = map[string]string{"Host": "bücher.example"}
	if res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1}); !res.Success {
		t.Fatalf("%+v", res)
	}
	if h := recv(t, got).host; h != "xn--bcher-kva.example" {
		t.Fatalf("Host %q, want the punycode form", h)
	}
}

// A connection left idle for the idle timeout is closed by the pool, not
// kept open for ever.
func TestH1PoolClosesIdleConnections(t *testing.T) {
	closed := make(chan struct{})
	srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		for s.readRequest(br) {
			io.WriteString(c, okResponse)
		}
		close(closed) // the client hung up
	})
	p := newH1Pool(&net.Dialer{})
	p.idleTimeout = 50 * time.Millisecond
	defer p.closeIdle()
	addr := strings.TrimSuffix(strings.TrimPrefix(srv.url(), "http://"), "/hook")
	out := outgoing{target: "/hook", host: addr, header: http.Header{}, body: []byte("x")}
	resp, err := p.roundTrip(context.Background(), time.Now().Add(5*time.Second), &out, addr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.mu.Lock()
	kept := p.nIdle
	p.mu.Unlock()
	if kept != 1 {
		t.Fatalf("%d idle connections after one attempt, want 1", kept)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection was never closed")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nIdle != 0 || len(p.idle) != 0 || p.janitor != nil {
		t.Fatalf("after the sweep: %d idle, %d hosts, janitor %v", p.nIdle, len(p.idle), p.janitor != nil)
	}
}

// A receiver that answers before it has read the whole body and closes (a
// 413 for a body too large, say) gives the attempt its answer, not a broken
// pipe, as net/http's Transport does.
func TestDeliverAnswerBeforeTheBodyIsRead(t *testing.T) {
	srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big!")
		time.Sleep(50 * time.Millisecond)
	})
	c := newTestClient(t, Options{})
	body := make([]byte, 64<<20)
	res := c.Deliver(context.Background(), loopbackDest(srv.url()), Request{EventID: "e", Attempt: 1, Body: body})
	if res.StatusCode != http.StatusRequestEntityTooLarge || string(res.Response) != "too big!" {
		t.Fatalf("result %+v, want the receiver's 413", res)
	}
}
