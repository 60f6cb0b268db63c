package delivery

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A receiver that drops every keep-alive connection leaves several dead
// connections in the pool: closed while idle (a restart, or a keep-alive
// timeout shorter than ours), or closed on the next request without an
// answer. The next attempt must still go out, on a new connection, not fail
// on a second dead one from the pool. When the dead connection had carried
// the request, the receiver sees it twice, byte for byte the same attempt
// (webhook-id, timestamp, signature, attempt number), which it dedupes on
// webhook-id; net/http re-sends the same way for requests marked
// idempotent, as ours are.
func TestDeliverAfterEveryPooledConnectionDied(t *testing.T) {
	const parallel = 3
	for _, tc := range []struct {
		name string
		// dropUnanswered: the pooled connections take the next request and
		// close without an answer, instead of closing while idle.
		dropUnanswered bool
	}{
		{"closed while idle", false},
		{"closed after the request", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu        sync.Mutex
				arrived   int
				allArrive = make(chan struct{})
				seen      []http.Header // of every request, in order
			)
			read := func(br *bufio.Reader) bool {
				req, err := http.ReadRequest(br)
				if err != nil {
					return false
				}
				io.Copy(io.Discard, req.Body)
				mu.Lock()
				seen = append(seen, req.Header)
				mu.Unlock()
				return true
			}
			srv := newRawServer(t, func(n int32, c net.Conn, br *bufio.Reader, s *rawServer) {
				if !read(br) {
					return
				}
				if n <= parallel {
					// Hold the first answers until every parallel attempt
					// has its own connection, so the pool keeps them all.
					mu.Lock()
					if arrived++; arrived == parallel {
						close(allArrive)
					}
					mu.Unlock()
					select {
					case <-allArrive:
					case <-time.After(5 * time.Second):
						return
					}
				}
				io.WriteString(c, okResponse)
				if tc.dropUnanswered && n <= parallel {
					read(br) // and close without an answer
				}
			})
			c := newTestClient(t, Options{})
			d := loopbackDest(srv.url())
			d.SigningSecret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
			var wg sync.WaitGroup
			for i := range parallel {
				wg.Go(func() {
					if res := c.Deliver(context.Background(), d, Request{EventID: fmt.Sprint("p", i), Attempt: 1}); !res.Success {
						t.Errorf("parallel attempt %d: %+v", i, res)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			time.Sleep(50 * time.Millisecond) // the receiver's closes arrive
			if res := c.Deliver(context.Background(), d, Request{EventID: "next", Attempt: 2, Body: []byte("b")}); !res.Success {
				t.Fatalf("attempt after the receiver dropped %d keep-alive connections: %+v", parallel, res)
			}
			mu.Lock()
			defer mu.Unlock()
			want := parallel + 1
			if tc.dropUnanswered {
				want++
			}
			if len(seen) != want {
				t.Fatalf("receiver saw %d requests, want %d", len(seen), want)
			}
			if tc.dropUnanswered {
				a, b := seen[len(seen)-2], seen[len(seen)-1]
				for _, k := range []string{hdrWebhookID, hdrWebhookTimestamp, hdrWebhookSignature, hdrAttempt} {
					if a.Get(k) == "" || a.Get(k) != b.Get(k) {
						t.Errorf("re-sent request's %s %q, the dropped one's %q", k, b.Get(k), a.Get(k))
					}
				}
			}
		})
	}
}

// Bytes a receiver sends on a keep-alive connection that no request asked
// for (a second answer to one request, a body longer than its
// Content-Length) are never taken as the answer to the next request on
// that connection: each attempt gets its own answer. net/http's Transport
// closes such a connection ("Unsolicited response received on idle HTTP
// channel").
func TestDeliverIgnoresUnsolicitedBytes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		delay time.Duration // before the extra bytes go out
	}{
		{"second answer at once", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale", 0},
		{"second answer while idle", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale", 30 * time.Millisecond},
		{"body past its length", "HTTP/1.1 500 Nope\r\nContent-Length: 5\r\n\r\nstale", 0},
		// Some servers say 408 on a keep-alive connection they time out
		// (net/http's Transport drops such a connection quietly).
		{"408 on the idle connection", "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 5\r\n\r\nstale", 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(_ int32, c net.Conn, br *bufio.Reader, s *rawServer) {
				for first := true; ; first = false {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					s.requests.Add(1)
					id := req.Header.Get(hdrWebhookID)
					answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
					if first && tc.delay == 0 {
						answer += tc.extra // in the same write
					}
					io.WriteString(c, answer)
					if first && tc.delay > 0 {
						time.Sleep(tc.delay)
						io.WriteString(c, tc.extra)
					}
				}
			})
			c := newTestClient(t, Options{})
			d := loopbackDest(srv.url())
			for i := range 3 {
				id := fmt.Sprint("evt_", i)
				res := c.Deliver(context.Background(), d, Request{EventID: id, Attempt: 1})
				if !res.Success || string(res.Response) != id {
					t.Fatalf("attempt for %s got %+v (response %q), want its own answer", id, res, res.Response)
				}
				time.Sleep(2 * tc.delay)
			}
		})
	}
}

// CloseIdle (what serve runs once the node has drained its attempts)
// closes every pooled connection at once, and leaves no sweep armed; the
// pool stays usable.
func TestCloseIdleClosesPooledConnections(t *testing.T) {
	hungUp := make(chan int32, 4)
	srv := newRawServer(t, func(n int32, c net.Conn, br *bufio.Reader, s *rawServer) {
		for s.readRequest(br) {
			io.WriteString(c, okResponse)
		}
		hungUp <- n
	})
	c := newTestClient(t, Options{})
	d := loopbackDest(srv.url())
	if res := c.Deliver(context.Background(), d, Request{EventID: "a", Attempt: 1}); !res.Success {
		t.Fatalf("%+v", res)
	}
	c.CloseIdle()
	select {
	case n := <-hungUp:
		if n != 1 {
			t.Fatalf("connection %d closed, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pooled connection stayed open after CloseIdle")
	}
	c.mu.Lock()
	for k, p := range c.pools {
		p.mu.Lock()
		if p.nIdle != 0 || len(p.idle) != 0 || p.janitor != nil {
			t.Errorf("pool %+v after CloseIdle: %d idle, janitor %v", k, p.nIdle, p.janitor != nil)
		}
		p.mu.Unlock()
	}
	c.mu.Unlock()
	if res := c.Deliver(context.Background(), d, Request{EventID: "b", Attempt: 1}); !res.Success {
		t.Fatalf("after CloseIdle: %+v", res)
	}
}
