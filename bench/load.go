package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: microseconds from 1 µs to one hour, three significant digits.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
)

// lateAfter is how far behind its intended time an open-loop send may go
// before it counts as late.
const lateAfter = 2 * time.Millisecond

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// recorder is one latency histogram shared by a phase's workers. A mutex is
// cheaper here than one 300 KiB histogram per worker.
type recorder struct {
	mu   sync.Mutex // guards h
	h    *hdrhistogram.Histogram
	ok   atomic.Int64
	errs atomic.Int64
	late atomic.Int64 // open loop: sent more than lateAfter behind schedule

	errMu    sync.Mutex // guards firstErr
	firstErr error
}

func newRecorder() *recorder { return &recorder{h: newHist()} }

func (r *recorder) record(d time.Duration) {
	us := d.Microseconds()
	if us < histLowest {
		us = histLowest
	}
	if us > histHighest {
		us = histHighest
	}
	r.mu.Lock()
	_ = r.h.RecordValue(us) // cannot fail: clamped to the trackable range
	r.mu.Unlock()
	r.ok.Add(1)
}

func (r *recorder) fail(err error) {
	r.errs.Add(1)
	r.errMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.errMu.Unlock()
}

func (r *recorder) latency() Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	return latencyOf(r.h)
}

func (r *recorder) firstError() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.firstErr
}

// latencyOf summarises a microsecond histogram in milliseconds.
func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
	}
}

// sendFunc sends request seq. sent is the time its latency counts from: the
// intended send time in open loop, the actual one in closed loop. It belongs to
// one worker and is never called concurrently, so it may reuse buffers.
type sendFunc func(ctx context.Context, seq int64, sent time.Time) error

// load describes one phase of load.
type load struct {
	rate     float64       // open-loop requests per second
	closed   bool          // closed loop: send as soon as the previous answer is in
	workers  int           // fixed pool size
	duration time.Duration // no request is scheduled (open) or started (closed) after this
	requests int64         // cap
	firstSeq int64         // sequence numbers start here (keeps ids unique across phases)
	// newWorker returns the send function of one worker.
	newWorker func() sendFunc
	// rec is optional; when set, the phase records into it (so a caller can
	// watch the counters); otherwise a fresh recorder is used.
	rec *recorder
}

// loadResult is what one phase measured.
type loadResult struct {
	rec     *recorder
	start   time.Time
	elapsed time.Duration // from the first scheduled send to the last answer (open loop: at least the schedule)
	// cpu is the CPU time of this process and the side's child processes
	// during the phase, when alternateCPU measured it (cpuOK).
	cpu   time.Duration
	cpuOK bool
}

// cpuPerOK is CPU microseconds per successful request (0 when unknown).
func (r loadResult) cpuPerOK() float64 {
	if !r.cpuOK || r.rec.ok.Load() == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.rec.ok.Load())
}

func (r loadResult) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.rec.ok.Load()) / r.elapsed.Seconds()
}

// run drives the phase to completion: until duration or the request cap, or
// ctx is done. Requests already scheduled when the time is up are still sent
// (and count, late), so a stall near the end is not hidden either.
func (l load) run(ctx context.Context) loadResult {
	rec := l.rec
	if rec == nil {
		rec = newRecorder()
	}
	workers := max(l.workers, 1)
	var next atomic.Int64
	// A short lead lets every worker reach its first slot before it is due.
	start := time.Now().Add(5 * time.Millisecond)
	end := start.Add(l.duration)
	interval := float64(time.Second)
	if l.rate > 0 {
		interval /= l.rate
	}

	var wg sync.WaitGroup
	for range workers {
		send := l.newWorker()
		wg.Go(func() {
			if l.closed {
				closedLoop(ctx, send, rec, &next, l.requests, l.firstSeq, start, end)
			} else {
				openLoop(ctx, send, rec, &next, l.requests, l.firstSeq, start, end, interval)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if !l.closed && ctx.Err() == nil {
		// The schedule is the phase's length even when the last answer came
		// back early (the last slot is one interval before the end), so an
		// open loop that keeps up reports exactly its rate.
		span := min(float64(l.duration), float64(l.requests)*interval)
		elapsed = max(elapsed, time.Duration(span))
	}
	return loadResult{rec: rec, start: start, elapsed: elapsed}
}

func openLoop(ctx context.Context, send sendFunc, rec *recorder, next *atomic.Int64, limit, firstSeq int64, start, end time.Time, interval float64) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		i := next.Add(1) - 1
		if i >= limit {
			return
		}
		intended := start.Add(time.Duration(float64(i) * interval))
		if !intended.Before(end) {
			return
		}
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(intended) > lateAfter {
			rec.late.Add(1)
		}
		if err := send(ctx, firstSeq+i, intended); err != nil {
			if ctx.Err() != nil {
				return
			}
			rec.fail(err)
			continue
		}
		rec.record(time.Since(intended))
	}
}

func closedLoop(ctx context.Context, send sendFunc, rec *recorder, next *atomic.Int64, limit, firstSeq int64, start, end time.Time) {
	if d := time.Until(start); d > 0 {
		time.Sleep(d)
	}
	for ctx.Err() == nil {
		i := next.Add(1) - 1
		if i >= limit {
			return
		}
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		if err := send(ctx, firstSeq+i, t0); err != nil {
			if ctx.Err() != nil {
				return
			}
			rec.fail(err)
			continue
		}
		rec.record(time.Since(t0))
	}
}

// newClient returns the load generator's HTTP client: keep-alive, one idle
// connection per worker, no proxy, no compression, and a dialer that refuses
// anything but loopback.
func newClient(workers int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          workers * 2,
		MaxIdleConnsPerHost:   workers,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: 0,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// loopbackOnly is a net.Dialer Control hook: the second line of defence behind
// the target check (a "localhost" that resolves elsewhere is refused here).
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("bench: dial %s %s: %w", network, address, ErrNotLoopback)
	}
	return nil
}

// errStatus is a response with an unexpected status.
type errStatus struct {
	code int
	body string
}

func (e *errStatus) Error() string {
	return fmt.Sprintf("unexpected status %d: %s", e.code, e.body)
}

func isStatus(err error, code int) bool {
	var es *errStatus
	return errors.As(err, &es) && es.code == code
}
