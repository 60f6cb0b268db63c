package ingress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// trickle is a body that hands out its bytes a few at a time, as a slow
// network would.
type trickle struct {
	b    []byte
	step int
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), t.step)], t.b)
	t.b = t.b[n:]
	return n, nil
}

func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	const limit = 1 << 20
	cases := []struct {
		name     string
		size     int
		declared int64 // -1: chunked
		wantHeld int64
		wantErr  string
	}{
		{"empty", 0, 0, 1, ""},
		{"small exact", 100, 100, 101, ""},
		{"first alloc exact", firstAlloc - 1, firstAlloc - 1, firstAlloc, ""},
		{"grows once", firstAlloc + 10, firstAlloc + 10, firstAlloc + 11, ""},
		{"grows to the declared length", 100_000, 100_000, 100_001, ""},
		{"chunked small", 100, -1, firstAlloc, ""},
		{"chunked large", 100_000, -1, 128 << 10, ""},
		{"at the limit", limit, limit, limit + 1, ""},
		{"chunked over the limit", limit + 5, -1, limit + 1, "request body too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("z"), tc.size)
			req := httptest.NewRequest("POST", "/in/x", &trickle{b: body, step: 3000})
			req.ContentLength = tc.declared
			b := &budget{max: 4 << 20}
			got, held, err := readBody(httptest.NewRecorder(), req, limit, b)
			if held != tc.wantHeld || b.used.Load() != held {
				t.Fatalf("held %d (budget %d), want %d", held, b.used.Load(), tc.wantHeld)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("err %v, %d bytes back of %d", err, len(got), len(body))
			}
		})
	}
}

func TestReadBodyOverBudget(t *testing.T) {
	b := &budget{max: firstAlloc + 100}
	req := httptest.NewRequest("POST", "/in/x", bytes.NewReader(make([]byte, 2*firstAlloc)))
	_, held, err := readBody(httptest.NewRecorder(), req, 1<<20, b)
	if !errors.Is(err, errBusy) || held != firstAlloc {
		t.Fatalf("err %v held %d, want errBusy after the first buffer", err, held)
	}
}

// serveReal runs h on a real loopback listener capped at maxConns.
func serveReal(t *testing.T, h http.Handler, maxConns int) (string, *ConnLimiter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, maxConns, true)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { srv.Serve(lim); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), lim
}

// openStalled opens n connections that each declare a body of declared
// bytes and send one byte of it.
func openStalled(t *testing.T, addr string, n int, declared int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	head := fmt.Sprintf("POST /in/gen HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Webhook-Id: a\r\n\r\n{", declared)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestStalledBodiesDoNotAmplifyMemory is the attack from issue 9: many
// connections each declare a 1 MiB body and send one byte. Before the fix
// the handler allocated the declared length at once (500 MiB here); now
// each costs its first buffer (16 KiB) and net/http's own per-connection
// state. The bound: at most 64 KiB of heap per stalled connection.
func TestStalledBodiesDoNotAmplifyMemory(t *testing.T) {
	const conns = 500
	const perConn = 64 << 10
	e := newEnv(t)
	h := NewHandler(Config{Node: e.node, MaxBody: 1 << 20})
	addr, _ := serveReal(t, h, 10_000)
	before := heapInuse()
	openStalled(t, addr, conns, 1<<20)
	waitFor(t, "every stalled body to be buffered", func() bool { return h.InFlight() == conns*firstAlloc })
	grew := int64(heapInuse()) - int64(before)
	t.Logf("%d stalled 1 MiB bodies: heap grew %.1f MiB (%.1f KiB per connection), %d KiB of body buffers",
		conns, float64(grew)/(1<<20), float64(grew)/conns/1024, h.InFlight()>>10)
	if grew > conns*perConn {
		t.Fatalf("heap grew %d bytes for %d stalled connections, bound %d", grew, conns, conns*perConn)
	}
}

func readStatus(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestInFlightCapAnswers503ThenRecovers(t *testing.T) {
	e := newEnv(t)
	h := NewHandler(Config{Node: e.node, MaxBody: 1 << 20, MaxInFlight: 4 * firstAlloc})
	addr, _ := serveReal(t, h, 100)
	stalled := openStalled(t, addr, 4, 1<<20)
	waitFor(t, "the budget to fill", func() bool { return h.InFlight() == 4*firstAlloc })

	over := openStalled(t, addr, 1, 1<<20)[0]
	resp := readStatus(t, over)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the budget: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, c := range stalled {
		c.Close()
	}
	waitFor(t, "the budget to empty", func() bool { return h.InFlight() == 0 })
	body := []byte(`{"ok":1}`)
	res, err := http.DefaultClient.Do(signedRequest(t, "http://"+addr+"/in/gen", body, "after"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		t.Fatalf("after the flood: %d, want 202", res.StatusCode)
	}
}

func signedRequest(t *testing.T, url string, body []byte, id string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range signed(body, id) {
		req.Header.Set(k, v)
	}
	return req
}

func TestConnectionCap(t *testing.T) {
	e := newEnv(t)
	h := NewHandler(Config{Node: e.node, MaxBody: 1 << 20})
	addr, lim := serveReal(t, h, 3)
	held := openStalled(t, addr, 3, 100)
	waitFor(t, "three connections open", func() bool { return lim.Open() == 3 })

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := readStatus(t, c)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != retryBusy || lim.Refused() != 1 {
		t.Fatalf("over the cap: %d Retry-After %q refused %d", resp.StatusCode, resp.Header.Get("Retry-After"), lim.Refused())
	}

	held[0].Close()
	waitFor(t, "a slot to free", func() bool { return lim.Open() == 2 })
	body := []byte(`{"ok":2}`)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(signedRequest(t, "http://"+addr+"/in/gen", body, "slot"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		t.Fatalf("under the cap again: %d, want 202", res.StatusCode)
	}
}
