package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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

// forward is a forward that reaches the app through an agent.
type forward struct {
	addr  string
	close func()
	pids  []int // the server and agent the harness started, for CPU accounting; none for one given by hand
}

// tunnelForward returns a forward that reaches appAddr through an agent:
// the one given by hand, or one the harness sets up (startTunnel). An
// error wrapping ErrNotAvailable means there is none.
func (r *runner) tunnelForward(ctx context.Context, name, appAddr string, probe func(context.Context, string) error) (forward, error) {
	if r.opts.ForwardAddr != "" {
		return forward{addr: r.opts.ForwardAddr, close: func() {}}, nil
	}
	if r.opts.Target != "" {
		return forward{}, tunnelUnavailable(name, errors.New("with --target the harness cannot set up the tunnel"))
	}
	t, err := r.startTunnel(ctx, name, appAddr, probe)
	switch {
	case errors.Is(err, ErrNotAvailable), errors.Is(err, ErrServerUnavailable):
		return forward{}, tunnelUnavailable(name, err)
	case err != nil:
		return forward{}, err
	}
	return forward{addr: t.forwardAddr, close: t.close, pids: []int{t.server.cmd.Process.Pid, t.agent.cmd.Process.Pid}}, nil
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
	tun, tunErr := r.tunnelForward(ctx, ScenarioTunnelHTTP, app.addr(), func(ctx context.Context, fwd string) error {
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
	// phase measures one side alone, with the CPU it costs (this process's
	// plus pids').
	phase := func(label, base string, pids []int) loadResult {
		cpu0, ok0 := processCPU(pids)
		lr := r.measure(ctx, label, mk(base))
		cpu1, ok1 := processCPU(pids)
		lr.cpu, lr.cpuOK = cpu1-cpu0, ok0 && ok1
		return lr
	}
	var lr, br loadResult
	switch {
	case tunErr == nil && r.opts.Baseline && r.opts.Rounds > 1:
		nw := watchNeighbours(tun.pids)
		lr, br = r.alternateCPU(ctx, ScenarioTunnelHTTP, mk("http://"+tun.addr), mk(app.url()), nil, tun.pids)
		nw.report(&res)
		res.Mode += fmt.Sprintf(", %d rounds", r.opts.Rounds)
	case tunErr == nil:
		nw := watchNeighbours(tun.pids)
		lr = phase(ScenarioTunnelHTTP, "http://"+tun.addr, tun.pids)
		if r.opts.Baseline {
			br = phase(ScenarioTunnelHTTP+" direct", app.url(), nil)
		}
		nw.report(&res)
	case r.opts.Baseline:
		br = phase(ScenarioTunnelHTTP+" direct", app.url(), nil)
	}
	if tunErr == nil {
		// Idle keep-alive connections through the forward would hold the
		// server's shutdown for its whole drain timeout.
		r.client.CloseIdleConnections()
		tun.close()
		fill(&res, lr, "req/s")
	}
	if r.opts.Baseline {
		fillBaseline(&res, br.throughput(), br.rec.latency())
		if err := br.rec.firstError(); err != nil && res.FirstError == "" {
			res.FirstError = "direct: " + err.Error()
		}
	}
	// CPU per request, the harness's plus the server's and agent's on the
	// tunnel's side: unlike the rates, it does not lean towards the side
	// with more processes when neighbours load the machine (goals.go).
	if t, d := lr.cpuPerOK(), br.cpuPerOK(); t > 0 && d > 0 && len(tun.pids) > 0 {
		res.setExtra("cpu_us_per_req", t)
		res.setExtra("direct_cpu_us_per_req", d)
		res.setExtra(extraCPURatio, d/t)
	}
	if tunErr != nil {
		return res, tunErr
	}
	return res, ctx.Err()
}

// extraRatioToQUIC is tunnel-tcp's ratio to the bare quic-go stream.
const extraRatioToQUIC = "ratio_to_quic"

// tunnelTCP measures bulk bytes over raw TCP streams to a loopback discard
// app through the tunnel and, with --baseline, directly (the machine's
// loopback TCP) and, when the tunnel runs over QUIC, over a bare quic-go
// stream in this process with the tunnel's flow-control windows (the
// ceiling for any QUIC tunnel here). With --rounds the paths take turns in
// slices of --duration, so a noisy neighbour hits them alike.
func (r *runner) tunnelTCP(ctx context.Context) (ScenarioResult, error) {
	rounds := max(r.opts.Rounds, 1)
	res := ScenarioResult{Name: ScenarioTunnelTCP, Mode: fmt.Sprintf("closed x%d streams, %d KiB writes", r.opts.Streams, tcpChunk>>10), Unit: "MB/s"}
	if rounds > 1 {
		res.Mode += fmt.Sprintf(", %d rounds", rounds)
	}
	app, err := startDiscard(r.opts.AppAddr)
	if err != nil {
		return res, fmt.Errorf("bench: app: %w", err)
	}
	defer app.Close()
	tun, tunErr := r.tunnelForward(ctx, ScenarioTunnelTCP, app.addr(), func(ctx context.Context, fwd string) error {
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
	var tunnel, direct, bare, bare2 *bulkTarget
	var targets []*bulkTarget
	if tunErr == nil {
		defer tun.close()
		tunnel = app.target("tunnel", tun.addr)
		tunnel.pids = tun.pids
		targets = append(targets, tunnel)
	}
	if r.opts.Baseline {
		direct = app.target("direct", app.addr())
		targets = append(targets, direct)
		if tunErr == nil && r.transport == "quic" {
			qs, err := startQUICSink()
			if err != nil {
				return res, fmt.Errorf("bench: bare QUIC baseline: %w", err)
			}
			defer qs.Close()
			bare = qs.target("bare quic")
			targets = append(targets, bare)
			self, err := os.Executable()
			if err != nil {
				return res, fmt.Errorf("bench: two-process QUIC baseline: %w", err)
			}
			qs2, pid, err := startQUICSinkProcess(ctx, self)
			if err != nil {
				return res, fmt.Errorf("bench: two-process QUIC baseline: %w", err)
			}
			defer qs2.Close()
			bare2 = qs2.target("bare quic 2proc")
			bare2.pids = []int{pid}
			targets = append(targets, bare2)
		}
	}
	var pids []int
	for _, t := range targets {
		pids = append(pids, t.pids...)
	}
	nw := watchNeighbours(pids)
	if err := r.bulkRounds(ctx, targets); err != nil {
		return res, err
	}
	nw.report(&res)
	if tunnel != nil {
		res.Throughput, res.Latency, res.Count, res.DurationSeconds = tunnel.mbps(), tunnel.rec.latency(), tunnel.rec.ok.Load(), tunnel.elapsed.Seconds()
	}
	if direct != nil {
		fillBaseline(&res, direct.mbps(), direct.rec.latency())
	}
	if bare != nil && bare.mbps() > 0 {
		res.setExtra("quic_mbps", bare.mbps())
		res.setExtra(extraRatioToQUIC, res.Throughput/bare.mbps())
	}
	if bare2 != nil && bare2.mbps() > 0 {
		res.setExtra("quic_2proc_mbps", bare2.mbps())
		res.setExtra("ratio_to_quic_2proc", res.Throughput/bare2.mbps())
	}
	// CPU per MB of each path (this process, plus the server and agent on
	// the tunnel's): what the rates would come to on an idle machine where
	// CPU is the limit.
	for _, c := range []struct {
		key string
		t   *bulkTarget
	}{{"cpu_us_per_mb", tunnel}, {"direct_cpu_us_per_mb", direct}, {"quic_cpu_us_per_mb", bare}, {"quic_2proc_cpu_us_per_mb", bare2}} {
		if c.t != nil && c.t.cpuPerMB() > 0 && (c.t != tunnel || len(c.t.pids) > 0) {
			res.setExtra(c.key, c.t.cpuPerMB())
		}
	}
	if t := res.Extra["cpu_us_per_mb"]; t > 0 {
		if q := res.Extra["quic_cpu_us_per_mb"]; q > 0 {
			res.setExtra("cpu_ratio_to_quic", q/t)
		}
		if q := res.Extra["quic_2proc_cpu_us_per_mb"]; q > 0 {
			res.setExtra(extraCPURatioToQUIC2, q/t)
		}
	}
	if tunErr != nil {
		return res, tunErr
	}
	return res, ctx.Err()
}

// bulkTarget is one path the bulk scenario writes through, and what it
// measured over its slices.
type bulkTarget struct {
	label    string
	dial     func(ctx context.Context) (io.WriteCloser, error)
	received func() int64 // bytes the receiving end has counted so far
	settle   func()       // waits (bounded) until the closed streams are read to the end
	pids     []int        // child processes on the path, whose CPU time counts too
	rec      *recorder    // one chunk write each

	bytes   int64
	elapsed time.Duration
	cpu     time.Duration // of this process and pids during the slices
	cpuOK   bool
}

// cpuPerMB is the CPU time the machine spent per MB moved, in microseconds
// (0 when unknown): on a shared machine it is steadier than the rate.
func (t *bulkTarget) cpuPerMB() float64 {
	if !t.cpuOK || t.bytes == 0 {
		return 0
	}
	return float64(t.cpu.Microseconds()) / (float64(t.bytes) / 1e6)
}

func (t *bulkTarget) mbps() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.bytes) / 1e6 / t.elapsed.Seconds()
}

// bulkRounds runs a warmup on each target, then Rounds slices of
// Duration/Rounds on each, in turn (the order rotates every round).
func (r *runner) bulkRounds(ctx context.Context, targets []*bulkTarget) error {
	if len(targets) == 0 {
		return nil
	}
	rounds := max(r.opts.Rounds, 1)
	for _, t := range targets {
		t.rec = newRecorder()
		if r.opts.Warmup > 0 {
			p := startProgress(r.opts.Progress, ScenarioTunnelTCP+" "+t.label+" warmup", r.opts.Warmup, func() string { return "" })
			_, err := r.bulkSlice(ctx, t, r.opts.Warmup, r.opts.Requests, false)
			p.stop()
			if err != nil {
				return err
			}
		}
	}
	p := startProgress(r.opts.Progress, ScenarioTunnelTCP, time.Duration(len(targets))*r.opts.Duration, func() string {
		var s string
		for _, t := range targets {
			s += fmt.Sprintf(" %s %d MB", t.label, t.bytes/1e6)
		}
		return s
	})
	defer p.stop()
	slice := r.opts.Duration / time.Duration(rounds)
	perSlice := max(r.opts.Requests/int64(rounds), 1)
	for i := range rounds {
		for k := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t := targets[(i+k)%len(targets)]
			if _, err := r.bulkSlice(ctx, t, slice, perSlice, true); err != nil {
				return err
			}
		}
	}
	for _, t := range targets {
		if t.bytes == 0 {
			return fmt.Errorf("bench: %s %s: nothing arrived", ScenarioTunnelTCP, t.label)
		}
	}
	return nil
}

// bulkSlice writes tcpChunk-sized chunks over Streams streams of t for d
// (or chunks), closes them, waits for the receiver and, when record is
// set, adds what arrived and the time to t.
func (r *runner) bulkSlice(ctx context.Context, t *bulkTarget, d time.Duration, chunks int64, record bool) (int64, error) {
	var (
		mu    sync.Mutex // guards conns
		conns []io.WriteCloser
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
	chunk := make([]byte, tcpChunk) // only ever read, so the workers can share it
	newWorker := func() sendFunc {
		var w io.WriteCloser
		return func(ctx context.Context, _ int64, _ time.Time) error {
			if w == nil {
				c, err := t.dial(ctx)
				if err != nil {
					return err
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				w = c
			}
			_, err := w.Write(chunk)
			return err
		}
	}
	l := load{closed: true, workers: r.opts.Streams, duration: d, requests: chunks, newWorker: newWorker}
	if record {
		l.rec = t.rec
	}
	before := t.received()
	cpu0, ok0 := processCPU(t.pids)
	lr := l.run(ctx)
	// Close the streams and let the receiver read what is still in flight
	// (it was written within the slice) before counting.
	closeAll()
	t.settle()
	got := t.received() - before
	cpu1, ok1 := processCPU(t.pids)
	if err := lr.rec.firstError(); err != nil {
		return got, fmt.Errorf("bench: %s %s: %w", ScenarioTunnelTCP, t.label, err)
	}
	if record {
		t.cpuOK = (t.cpuOK || t.bytes == 0) && ok0 && ok1
		t.bytes += got
		t.elapsed += lr.elapsed
		t.cpu += cpu1 - cpu0
	}
	return got, nil
}

// target is the bulk target that reaches the app through addr (the app
// itself, or a forward to it).
func (d *discard) target(label, addr string) *bulkTarget {
	dialer := net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	return &bulkTarget{
		label: label,
		dial: func(ctx context.Context) (io.WriteCloser, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		},
		received: d.n.Load,
		settle: func() {
			for deadline := time.Now().Add(2 * time.Second); d.active() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		},
	}
}

// countUntilError reads r until an error (EOF included), adding what it
// reads to n as it goes.
func countUntilError(r io.Reader, n *atomic.Int64) {
	buf := make([]byte, tcpChunk)
	for {
		k, err := r.Read(buf)
		n.Add(int64(k))
		if err != nil {
			return
		}
	}
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
			countUntilError(c, &d.n)
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
