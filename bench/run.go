package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// Run runs opts.Scenarios in order and returns their figures. A scenario that
// fails is reported with its Error set and the run goes on; the returned error
// joins every scenario's error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	r := &runner{opts: opts, client: newClient(opts.Concurrency, opts.RequestTimeout)}
	defer r.client.CloseIdleConnections()
	rep := &Report{Machine: machineFacts(ctx)}
	var errs []error
	for _, name := range opts.Scenarios {
		for _, transport := range r.transportsOf(name) {
			if ctx.Err() != nil {
				errs = append(errs, ctx.Err())
				return rep, errors.Join(errs...)
			}
			r.transport = transport
			res, err := r.scenario(ctx, name)
			r.client.CloseIdleConnections() // the next scenario talks to other servers
			res.Name, res.Transport = name, transport
			setGoal(&res, transport, opts.Ordering)
			if err != nil {
				res.Error = err.Error()
				res.NotAvailable = errors.Is(err, ErrNotAvailable)
				errs = append(errs, fmt.Errorf("%s: %w", res.label(), err))
			}
			rep.Scenarios = append(rep.Scenarios, res)
		}
	}
	return rep, errors.Join(errs...)
}

type runner struct {
	opts      Options
	client    *http.Client
	transport string // the tunnel's transport for this run of a tunnel scenario
}

// transportsOf lists the transports a scenario runs over: each of
// Options.Transports for a tunnel scenario the harness sets up, one run
// (no transport named) otherwise.
func (r *runner) transportsOf(name string) []string {
	if (name == ScenarioTunnelHTTP || name == ScenarioTunnelTCP) && r.opts.ForwardAddr == "" && r.opts.Target == "" {
		return r.opts.Transports
	}
	return []string{""}
}

func (r *runner) scenario(ctx context.Context, name string) (ScenarioResult, error) {
	switch name {
	case ScenarioIngest:
		return r.ingest(ctx)
	case ScenarioE2E:
		return r.e2e(ctx)
	case ScenarioRecovery:
		return r.recovery(ctx)
	case ScenarioDestinations:
		return r.destinations(ctx)
	case ScenarioTunnelHTTP:
		return r.tunnelHTTP(ctx)
	case ScenarioTunnelTCP:
		return r.tunnelTCP(ctx)
	case ScenarioCluster:
		return r.cluster(ctx)
	}
	return ScenarioResult{}, fmt.Errorf("bench: unknown scenario %q", name)
}

// mode describes how load is driven, for the report.
func (r *runner) mode() string {
	if r.opts.Max {
		return fmt.Sprintf("closed x%d", r.opts.Concurrency)
	}
	return fmt.Sprintf("open %g/s x%d", r.opts.Rate, r.opts.Concurrency)
}

// phase describes one measured phase of request load.
func (r *runner) phase(newWorker func() sendFunc) load {
	return load{
		rate:      r.opts.Rate,
		closed:    r.opts.Max,
		workers:   r.opts.Concurrency,
		duration:  r.opts.Duration,
		requests:  r.opts.Requests,
		newWorker: newWorker,
	}
}

// measure runs the warmup (unrecorded) and then the measured phase, with a
// progress bar. newPhase(true) is the warmup's load, newPhase(false) the
// measured one (each from its own signer, so their ids differ).
func (r *runner) measure(ctx context.Context, label string, newPhase func(warmup bool) load) loadResult {
	if r.opts.Warmup > 0 {
		w := newPhase(true)
		w.duration = r.opts.Warmup
		p := startProgress(r.opts.Progress, label+" warmup", w.duration, func() string { return "" })
		w.run(ctx)
		p.stop()
	}
	l := newPhase(false)
	l.rec = newRecorder()
	p := startProgress(r.opts.Progress, label, l.duration, func() string {
		return fmt.Sprintf("%d ok %d err", l.rec.ok.Load(), l.rec.errs.Load())
	})
	defer p.stop()
	return l.run(ctx)
}

// fill copies a phase's figures into res.
func fill(res *ScenarioResult, lr loadResult, unit string) {
	res.Unit = unit
	res.Throughput = lr.throughput()
	res.Latency = lr.rec.latency()
	res.Count = lr.rec.ok.Load()
	res.Errors += lr.rec.errs.Load()
	res.DurationSeconds = lr.elapsed.Seconds()
	if err := lr.rec.firstError(); err != nil && res.FirstError == "" {
		res.FirstError = err.Error()
	}
	lateExtra(res, lr)
}

// lateExtra reports the share of open-loop requests that went out more than
// lateAfter behind their intended time. Their latency counts the wait, as it
// should; a high share means the worker pool (--concurrency) is too small for
// rate × latency, or the generator itself is short of CPU (a busy machine
// wakes its timers late).
func lateExtra(res *ScenarioResult, lr loadResult) {
	if n := lr.rec.ok.Load() + lr.rec.errs.Load(); n > 0 && lr.rec.late.Load() > 0 {
		res.setExtra("late_send_pct", 100*float64(lr.rec.late.Load())/float64(n))
	}
}

// fillBaseline records the baseline's figures and the ratios.
func fillBaseline(res *ScenarioResult, throughput float64, lat Latency) {
	res.BaselineThroughput = throughput
	res.BaselineLatency = &lat
	if throughput > 0 {
		res.Ratio = res.Throughput / throughput
	}
	if lat.P99 > 0 && res.Latency.P99 > 0 {
		res.setExtra("p99_ratio", res.Latency.P99/lat.P99)
	}
}

func (res *ScenarioResult) setExtra(k string, v float64) {
	if res.Extra == nil {
		res.Extra = make(map[string]float64)
	}
	res.Extra[k] = v
}

// tempDir makes a directory for one scenario's server; done removes it unless
// KeepData is set (then it says where it is).
func (r *runner) tempDir(name string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "webhookops-bench-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if r.opts.KeepData {
			if r.opts.Progress != nil {
				fmt.Fprintf(r.opts.Progress, "bench: kept %s\n", dir)
			}
			return
		}
		_ = os.RemoveAll(dir)
	}, nil
}

// ingestServer is the gateway under test for ingest/e2e: a running one
// (--target) or a child started on a temp dir routing the bench source to
// the sink.
type ingestServer struct {
	base  string
	child *child
	close func()
}

func (r *runner) startIngestServer(ctx context.Context, name string, sk *sink, maxAttempts int, timeout time.Duration, paused bool) (*ingestServer, error) {
	if r.opts.Target != "" {
		return &ingestServer{base: r.opts.Target, close: func() {}}, nil
	}
	bin, err := serverBin(ctx, r.opts.ServerBin)
	if err != nil {
		return nil, err
	}
	dir, cleanup, err := r.tempDir(name)
	if err != nil {
		return nil, err
	}
	cfg := serverConfig(r.opts.Source, r.opts.Secret, []string{"sink"}, []destConfig{{
		slug: "sink", url: sk.hookURL(), ordering: r.opts.Ordering, maxInFlight: r.opts.MaxInFlight,
		timeout: timeout, maxAttempts: maxAttempts, backoffBase: 100 * time.Millisecond, paused: paused,
	}})
	spec, err := newChildSpec(bin, dir, cfg, r.opts.ServerLog)
	if err != nil {
		cleanup()
		return nil, err
	}
	c, err := spec.start()
	if err != nil {
		cleanup()
		return nil, err
	}
	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		c.kill()
		cleanup()
		return nil, err
	}
	var once sync.Once
	return &ingestServer{base: spec.ingestURL(), child: c, close: func() {
		once.Do(func() {
			_ = c.stop(10 * time.Second)
			cleanup()
		})
	}}, nil
}

// CPU figures of ingest and e2e: the CPU time per request (ingest) or per
// delivery (e2e) of the harness and the server child together, the
// baseline's (the harness with its no-op handler), and the baseline's over
// ours. On a CPU-bound run the throughput ratio tends to cpu_ratio, which
// holds still while neighbours come and go.
const (
	extraCPU         = "cpu_us_per_req"
	extraCPUDelivery = "cpu_us_per_delivery"
	extraBaselineCPU = "baseline_cpu_us_per_req"
	// extraCPURatio (goals.go) is the baseline's over ours.
)

// pids lists the server child's process, if the harness started one.
func (s *ingestServer) pids() []int {
	if s.child == nil {
		return nil
	}
	return []int{s.child.pid()}
}

// cpuMark is the CPU time this process and some children had used at one
// moment (processCPU).
type cpuMark struct {
	pids []int
	at   time.Duration
	ok   bool
}

func markCPU(pids []int) cpuMark {
	at, ok := processCPU(pids)
	return cpuMark{pids: pids, at: at, ok: ok}
}

// perEvent is the CPU microseconds used since the mark per event of n; 0
// when unknown.
func (m cpuMark) perEvent(n int64) float64 {
	now, ok := processCPU(m.pids)
	if !m.ok || !ok || n <= 0 {
		return 0
	}
	return float64((now - m.at).Microseconds()) / float64(n)
}

// baselineIngest runs the same load against the in-process no-op handler.
func (r *runner) baselineIngest(ctx context.Context, res *ScenarioResult) error {
	noop, err := startHTTPServer("", noopIngest())
	if err != nil {
		return fmt.Errorf("bench: baseline server: %w", err)
	}
	defer noop.Close()
	var mark cpuMark
	lr := r.measure(ctx, res.Name+" baseline", func(warmup bool) load {
		if !warmup {
			mark = markCPU(nil)
		}
		return r.phase(newSigner(r.client, noop.url(), r.opts.Source, r.opts.Secret, r.opts.BodySize).newWorker)
	})
	fillBaseline(res, lr.throughput(), lr.rec.latency())
	if per := mark.perEvent(lr.rec.ok.Load()); per > 0 {
		res.setExtra(extraBaselineCPU, per)
		ours := res.Extra[extraCPU] // ingest
		if ours == 0 {
			ours = res.Extra[extraCPUDelivery] // e2e
		}
		if ours > 0 {
			res.setExtra(extraCPURatio, per/ours)
		}
	}
	if n := lr.rec.errs.Load(); n > 0 {
		return fmt.Errorf("bench: baseline had %d errors, first: %v", n, lr.rec.firstError())
	}
	return nil
}

// ingestMeasures is what the ingest figure counts when the harness starts
// the server.
const ingestMeasures = "durable ingest: verify, dedupe, the event and its outbox entry fsynced before the 202, " +
	"then its queue entry; the destination is paused, so nothing is delivered (e2e measures delivery)"

// ingest measures durable ingest. The harness's server routes the bench
// source to one paused destination: every event writes what a routed
// event writes on its way in (event, dedupe key, received audit, outbox
// entry in the synced commit before the 202; the queue entry and the
// outbox entry's removal in the destination's next write), and the
// delivery, which e2e measures, never starts. The sink is the
// destination's URL and must stay silent.
func (r *runner) ingest(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioIngest, Mode: r.mode(), Unit: "req/s"}
	if r.opts.Target == "" {
		res.Measures = ingestMeasures
	}
	sk, err := startSink(r.opts.SinkAddr)
	if err != nil {
		return res, err
	}
	defer sk.Close()
	srv, err := r.startIngestServer(ctx, ScenarioIngest, sk, 3, 5*time.Second, true)
	if err != nil {
		return res, err
	}
	if r.opts.Baseline && r.opts.Rounds > 1 {
		defer srv.close()
		res, err = r.ingestAlternating(ctx, res, srv)
		return res, errors.Join(err, r.pausedStayedSilent(sk))
	}
	var mark cpuMark
	lr := r.measure(ctx, ScenarioIngest, func(warmup bool) load {
		if !warmup {
			mark = markCPU(srv.pids())
		}
		return r.phase(newSigner(r.client, srv.base, r.opts.Source, r.opts.Secret, r.opts.BodySize).newWorker)
	})
	if len(srv.pids()) > 0 {
		if per := mark.perEvent(lr.rec.ok.Load()); per > 0 {
			res.setExtra(extraCPU, per)
		}
	}
	srv.close()
	fill(&res, lr, "req/s")
	if err := r.pausedStayedSilent(sk); err != nil {
		return res, err
	}
	if r.opts.Baseline {
		if err := r.baselineIngest(ctx, &res); err != nil {
			return res, err
		}
	}
	return res, ctx.Err()
}

// pausedStayedSilent checks that the ingest scenario's paused destination
// delivered nothing: a server that delivered anyway would count delivery
// against ingest again.
func (r *runner) pausedStayedSilent(sk *sink) error {
	if r.opts.Target != "" {
		return nil // its destinations are the running server's own
	}
	if n := sk.receipts.Load(); n > 0 {
		return fmt.Errorf("bench: ingest's destination is paused, yet the sink received %d deliveries", n)
	}
	return nil
}

// ingestAlternating is ingest with --baseline --rounds N: the gateway and the
// no-op handler take turns (see alternate).
func (r *runner) ingestAlternating(ctx context.Context, res ScenarioResult, srv *ingestServer) (ScenarioResult, error) {
	noop, err := startHTTPServer("", noopIngest())
	if err != nil {
		return res, fmt.Errorf("bench: baseline server: %w", err)
	}
	defer noop.Close()
	main := newSigner(r.client, srv.base, r.opts.Source, r.opts.Secret, r.opts.BodySize)
	pids := srv.pids()
	lr, br := r.alternateCPU(ctx, ScenarioIngest, func(warmup bool) load {
		if warmup {
			return r.phase(newSigner(r.client, srv.base, r.opts.Source, r.opts.Secret, r.opts.BodySize).newWorker)
		}
		return r.phase(main.newWorker)
	}, func(bool) load {
		return r.phase(newSigner(r.client, noop.url(), r.opts.Source, r.opts.Secret, r.opts.BodySize).newWorker)
	}, nil, pids)
	fill(&res, lr, "req/s")
	fillBaseline(&res, br.throughput(), br.rec.latency())
	res.Mode += fmt.Sprintf(", %d rounds", r.opts.Rounds)
	// CPU per request, the harness's plus the server's on our side: on a
	// CPU-bound run the throughput ratio tends to it, and it holds still
	// when neighbours come and go.
	if o, b := lr.cpuPerOK(), br.cpuPerOK(); o > 0 && b > 0 && len(pids) > 0 {
		res.setExtra(extraCPU, o)
		res.setExtra(extraBaselineCPU, b)
		res.setExtra(extraCPURatio, b/o)
	}
	if n := br.rec.errs.Load(); n > 0 {
		return res, fmt.Errorf("bench: baseline had %d errors, first: %v", n, br.rec.firstError())
	}
	return res, ctx.Err()
}
