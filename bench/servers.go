package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// httpServer is an in-process HTTP server on loopback that Close stops and
// waits for.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// listenLoopback listens on addr, or on a free loopback port when addr is empty.
func listenLoopback(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := CheckLoopbackHostPort(addr); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

func startHTTPServer(addr string, h http.Handler) (*httpServer, error) {
	ln, err := listenLoopback(addr)
	if err != nil {
		return nil, err
	}
	s := &httpServer{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns ErrServerClosed on Close
	}()
	return s, nil
}

func (s *httpServer) addr() string { return s.ln.Addr().String() }
func (s *httpServer) url() string  { return "http://" + s.addr() }

// Close stops the server, drops its connections and waits for it.
func (s *httpServer) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// noopIngest is the baseline for ingest and e2e: the least an HTTP handler on
// this machine can do for the same request. It reads the body (so the bytes
// really cross the socket) and answers 202 with a body shaped like the real one.
func noopIngest() http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var b [64]byte
		out := append(b[:0], `{"event_id":"noop-`...)
		out = strconv.AppendInt(out, n.Add(1), 10)
		out = append(out, `","duplicate":false}`...)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(out))}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(out)
	})
}

// Sink modes.
const (
	sinkHealthy int32 = iota // answer 204
	sinkStall                // hold the request until released or the client goes away
	sinkFail                 // answer 503
)

// sink is the local destination: it counts deliveries, dedupes them on the
// event id (webhook-id header) and records ingest-to-delivered latency from
// the send time encoded in X-Webhook-Id.
type sink struct {
	*httpServer
	mode    atomic.Int32
	release chan struct{} // closed to let stalled requests go; guarded by stalledMu

	receipts atomic.Int64 // every 2xx answered, duplicates included
	unique   atomic.Int64

	mu      sync.Mutex // guards the fields below
	seen    map[string]struct{}
	lat     *hdrhistogram.Histogram // delivered - sent
	prefix  string                  // when non-empty, only ids with this run prefix count
	epoch   time.Time               // when non-zero, since records delivered - epoch
	since   *hdrhistogram.Histogram
	first   time.Time // first unique delivery (after epoch, if set)
	last    time.Time // last unique delivery
	badIDs  int64
	changed chan struct{} // closed and replaced on every unique delivery

	stalledMu sync.Mutex // guards release
}

func startSink(addr string) (*sink, error) {
	s := &sink{
		release: make(chan struct{}),
		seen:    make(map[string]struct{}),
		lat:     newHist(),
		since:   newHist(),
		changed: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", s.serveHook)
	srv, err := startHTTPServer(addr, mux)
	if err != nil {
		return nil, fmt.Errorf("bench: sink: %w", err)
	}
	s.httpServer = srv
	return s, nil
}

func (s *sink) hookURL() string { return s.url() + "/hook" }

func (s *sink) serveHook(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	switch s.mode.Load() {
	case sinkStall:
		s.stalledMu.Lock()
		release := s.release
		s.stalledMu.Unlock()
		// A held request belongs to the server that was running when it
		// arrived (in recovery, one that has since been killed): it never
		// counts as delivered, whatever the mode is when it is let go.
		select {
		case <-release:
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
		return
	case sinkFail:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	s.deliver(r.Header.Get(headerEventID), r.Header.Get(headerWebhookID), now)
	w.WriteHeader(http.StatusNoContent)
}

func (s *sink) deliver(eventID, webhookID string, now time.Time) {
	prefix, _, sent, ok := parseWebhookID(webhookID)
	key := eventID
	if key == "" {
		key = webhookID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prefix != "" && prefix != s.prefix {
		return // warmup or foreign traffic
	}
	s.receipts.Add(1)
	if _, dup := s.seen[key]; dup {
		return
	}
	s.seen[key] = struct{}{}
	s.unique.Add(1)
	if ok {
		_ = s.lat.RecordValue(clampUS(now.Sub(sent)))
	} else {
		s.badIDs++
	}
	if !s.epoch.IsZero() {
		_ = s.since.RecordValue(clampUS(now.Sub(s.epoch)))
	}
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	close(s.changed)
	s.changed = make(chan struct{})
}

func clampUS(d time.Duration) int64 {
	return min(max(d.Microseconds(), histLowest), histHighest)
}

// setMode switches the sink; leaving sinkStall releases held requests with a
// 503 (the server that sent them is gone, or will retry).
func (s *sink) setMode(m int32) {
	old := s.mode.Swap(m)
	if old == sinkStall && m != sinkStall {
		s.stalledMu.Lock()
		close(s.release)
		s.release = make(chan struct{})
		s.stalledMu.Unlock()
	}
}

// resetStats forgets deliveries, counts from now on only those whose
// X-Webhook-Id carries prefix (any, if empty) and, if epoch is non-zero,
// records their arrival time since epoch.
func (s *sink) resetStats(epoch time.Time, prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefix = prefix
	s.seen = make(map[string]struct{})
	s.lat.Reset()
	s.since.Reset()
	s.epoch = epoch
	s.first, s.last = time.Time{}, time.Time{}
	s.badIDs = 0
	s.unique.Store(0)
	s.receipts.Store(0)
}

type sinkStats struct {
	unique, receipts, badIDs int64
	first, last              time.Time
	latency, since           Latency
}

func (s *sink) stats() sinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkStats{
		unique:   s.unique.Load(),
		receipts: s.receipts.Load(),
		badIDs:   s.badIDs,
		first:    s.first,
		last:     s.last,
		latency:  latencyOf(s.lat),
		since:    latencyOf(s.since),
	}
}

var errDrainTimeout = errors.New("timed out")

// waitUnique waits until at least n unique deliveries arrived, ctx is done or
// timeout passes.
func (s *sink) waitUnique(ctx context.Context, n int64, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		got := s.unique.Load()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("bench: %d of %d events delivered: %w", got, n, errDrainTimeout)
		}
	}
}
