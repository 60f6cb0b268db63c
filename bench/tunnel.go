package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// tcpChunk is the write size of the bulk TCP scenario (the size the tunnel
// ceiling in DEPENDENCIES.md was measured with).
const tcpChunk = 256 << 10

// tunnelUnavailable says why the tunnel half cannot run.
func tunnelUnavailable(scenario string, reason error) error {
	return fmt.Errorf("%s %w: %v; set up a forward to --app-addr by hand and pass --forward-addr, or run with --baseline for the direct figure",
		scenario, ErrNotAvailable, reason)
}

// tunnelForward returns the address of a forward that reaches appAddr
// through an agent: the one given by hand, or one the harness sets up
// (startTunnel). An error wrapping ErrNotAvailable means there is none.
func (r *runner) tunnelForward(ctx context.Context, name, appAddr string, probe func(context.Context, string) error) (string, func(), error) {
	if r.opts.ForwardAddr != "" {
		return r.opts.ForwardAddr, func() {}, nil
	}
	if r.opts.Target != "" {
		return "", nil, tunnelUnavailable(name, errors.New("with --target the harness cannot set up the tunnel"))
	}
	t, err := r.startTunnel(ctx, name, appAddr, probe)
	switch {
	case errors.Is(err, ErrNotAvailable), errors.Is(err, ErrServerUnavailable):
		return "", nil, tunnelUnavailable(name, err)
	case err != nil:
		return "", nil, err
	}
	return t.forwardAddr, t.close, nil
}

// tunnelHTTP measures HTTP requests to a loopback app through the tunnel
// (a forward that reaches the app through an agent) and, with --baseline,
// straight to the app. Without a tunnel only the direct half runs.
func (r *runner) tunnelHTTP(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioTunnelHTTP, Mode: r.mode(), Unit: "req/s"}
	app, err := startHTTPServer(r.opts.AppAddr, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.Header()["Content-Length"] = []string{"2"}
		_, _ = io.WriteString(w, "ok")
	}))
	if err != nil {
		return res, fmt.Errorf("bench: app: %w", err)
	}
	defer app.Close()
	fwd, closeTunnel, tunErr := r.tunnelForward(ctx, ScenarioTunnelHTTP, app.addr(), func(ctx context.Context, fwd string) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+fwd+"/app", nil)
		if err != nil {
			return err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return &errStatus{code: resp.StatusCode}
		}
		return nil
	})
	if tunErr != nil && !errors.Is(tunErr, ErrNotAvailable) {
		return res, tunErr
	}
	mk := func(base string) func(bool) load {
		return func(bool) load {
			sg := newSigner(r.client, base, r.opts.Source, r.opts.Secret, r.opts.BodySize)
			sg.url = base + "/app"
			sg.want = http.StatusOK
			return r.phase(sg.newWorker)
		}
	}
	phase := func(label, base string) loadResult { return r.measure(ctx, label, mk(base)) }
	if tunErr == nil && r.opts.Baseline && r.opts.Rounds > 1 {
		lr, br := r.alternate(ctx, ScenarioTunnelHTTP, mk("http://"+fwd), mk(app.url()), nil)
		r.client.CloseIdleConnections()
		closeTunnel()
		fill(&res, lr, "req/s")
		fillBaseline(&res, br.throughput(), br.rec.latency())
		res.Mode += fmt.Sprintf(", %d rounds", r.opts.Rounds)
		if err := br.rec.firstError(); err != nil && res.FirstError == "" {
			res.FirstError = "direct: " + err.Error()
		}
		return res, ctx.Err()
	}
	if tunErr == nil {
		fill(&res, phase(ScenarioTunnelHTTP, "http://"+fwd), "req/s")
		// Idle keep-alive connections through the forward would hold the
		// server's shutdown for its whole drain timeout.
		r.client.CloseIdleConnections()
		closeTunnel()
	}
	if r.opts.Baseline {
		lr := phase(ScenarioTunnelHTTP+" direct", app.url())
		fillBaseline(&res, lr.throughput(), lr.rec.latency())
		if err := lr.rec.firstError(); err != nil && res.FirstError == "" {
			res.FirstError = "direct: " + err.Error()
		}
	}
	if tunErr != nil {
		return res, tunErr
	}
	return res, ctx.Err()
}

// tunnelTCP measures bulk bytes over raw TCP streams to a loopback discard
// app through the tunnel and, with --baseline, directly.
func (r *runner) tunnelTCP(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioTunnelTCP, Mode: fmt.Sprintf("closed x%d streams, %d KiB writes", r.opts.Streams, tcpChunk>>10), Unit: "MB/s"}
	app, err := startDiscard(r.opts.AppAddr)
	if err != nil {
		return res, fmt.Errorf("bench: app: %w", err)
	}
	defer app.Close()
	fwd, closeTunnel, tunErr := r.tunnelForward(ctx, ScenarioTunnelTCP, app.addr(), func(ctx context.Context, fwd string) error {
		before := app.accepted.Load()
		d := net.Dialer{Timeout: 2 * time.Second, Control: loopbackOnly}
		c, err := d.DialContext(ctx, "tcp", fwd)
		if err != nil {
			return err
		}
		defer c.Close()
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if app.accepted.Load() > before {
				return nil
			}
		}
		return errors.New("the forward accepted but the app saw no connection")
	})
	if tunErr != nil && !errors.Is(tunErr, ErrNotAvailable) {
		return res, tunErr
	}
	if tunErr == nil {
		b, err := r.bulkTCP(ctx, ScenarioTunnelTCP, app, fwd)
		closeTunnel()
		if err != nil {
			return res, err
		}
		res.Throughput, res.Latency, res.Count, res.DurationSeconds = b.mbps, b.latency, b.chunks, b.elapsed.Seconds()
	}
	if r.opts.Baseline {
		b, err := r.bulkTCP(ctx, ScenarioTunnelTCP+" direct", app, app.addr())
		if err != nil {
			return res, fmt.Errorf("direct: %w", err)
		}
		fillBaseline(&res, b.mbps, b.latency)
	}
	if tunErr != nil {
		return res, tunErr
	}
	return res, ctx.Err()
}

type bulkResult struct {
	mbps    float64
	latency Latency
	chunks  int64
	elapsed time.Duration
}

// bulkTCP writes tcpChunk-sized chunks over Streams connections to addr
// (which leads to app, directly or through the tunnel) for Duration (or
// Requests chunks) and returns what app received in MB/s and the latency of
// each chunk write.
func (r *runner) bulkTCP(ctx context.Context, label string, app *discard, addr string) (bulkResult, error) {
	var (
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	closeAll := func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
	}
	defer closeAll()
	d := net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	chunk := make([]byte, tcpChunk) // only ever read, so the workers can share it
	newWorker := func() sendFunc {
		var conn net.Conn
		return func(ctx context.Context, _ int64, _ time.Time) error {
			if conn == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					return err
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				conn = c
			}
			_, err := conn.Write(chunk)
			return err
		}
	}
	mk := func(bool) load {
		return load{closed: true, workers: r.opts.Streams, duration: r.opts.Duration, requests: r.opts.Requests, newWorker: newWorker}
	}
	// Close the streams and let the app read what is still in socket
	// buffers (it was written within the phase) before counting.
	settle := func() {
		closeAll()
		for deadline := time.Now().Add(2 * time.Second); app.active() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	if r.opts.Warmup > 0 {
		w := mk(true)
		w.duration = r.opts.Warmup
		p := startProgress(r.opts.Progress, label+" warmup", w.duration, func() string { return "" })
		w.run(ctx)
		p.stop()
		settle()
	}
	before := app.n.Load()
	l := mk(false)
	l.rec = newRecorder()
	p := startProgress(r.opts.Progress, label, l.duration, func() string {
		return fmt.Sprintf("%d MB", (app.n.Load()-before)/1e6)
	})
	lr := l.run(ctx)
	p.stop()
	settle()
	received := app.n.Load() - before
	if err := lr.rec.firstError(); err != nil {
		return bulkResult{}, err
	}
	if lr.elapsed <= 0 || received == 0 {
		return bulkResult{}, fmt.Errorf("bench: %s: nothing arrived at the app", label)
	}
	return bulkResult{
		mbps:    float64(received) / 1e6 / lr.elapsed.Seconds(),
		latency: lr.rec.latency(),
		chunks:  lr.rec.ok.Load(),
		elapsed: lr.elapsed,
	}, nil
}

// discard is a loopback TCP app that reads and counts everything it is sent.
type discard struct {
	ln       net.Listener
	n        atomic.Int64
	accepted atomic.Int64 // connections accepted, for the tunnel probe
	wg       sync.WaitGroup
	mu       sync.Mutex // guards the fields below
	conn     map[net.Conn]struct{}
	closed   bool
}

func startDiscard(addr string) (*discard, error) {
	ln, err := listenLoopback(addr)
	if err != nil {
		return nil, err
	}
	d := &discard{ln: ln, conn: make(map[net.Conn]struct{})}
	d.wg.Go(d.accept)
	return d, nil
}

func (d *discard) addr() string { return d.ln.Addr().String() }

// active is the number of connections not yet at EOF.
func (d *discard) active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conn)
}

func (d *discard) accept() {
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			c.Close()
			return
		}
		d.conn[c] = struct{}{}
		d.mu.Unlock()
		d.accepted.Add(1)
		d.wg.Go(func() {
			buf := make([]byte, tcpChunk)
			for {
				n, err := c.Read(buf)
				d.n.Add(int64(n))
				if err != nil {
					break
				}
			}
			c.Close()
			d.mu.Lock()
			delete(d.conn, c)
			d.mu.Unlock()
		})
	}
}

// Close stops accepting, closes every connection and waits for the readers.
func (d *discard) Close() error {
	err := d.ln.Close()
	d.mu.Lock()
	d.closed = true
	for c := range d.conn {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	return err
}
