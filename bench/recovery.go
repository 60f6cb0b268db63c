package bench

import (
	"context"
	"fmt"
	"time"
)

// recoveryTimeout is the destination timeout while the backlog piles up. The
// sink holds every delivery open instead of failing it: a sink that refused
// or answered 503 would run each event through max_attempts and its backoff
// into the dead-letter queue (or leave retry due times minutes ahead), and
// the restart would then measure the backoff schedule, not recovery. Held
// requests never time out within the pile-up, so at the kill every event is
// either pending in the queue or in flight and unanswered.
const recoveryTimeout = 10 * time.Minute

// recovery: pile up N events while the sink stalls, kill -9 the server, bring
// the sink back, restart the server on the same data dir and time how long it
// takes to be ready, to deliver again and to drain the backlog.
func (r *runner) recovery(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioRecovery, Mode: fmt.Sprintf("closed x%d", r.opts.Concurrency), Unit: "events/s"}
	if r.opts.Target != "" {
		return res, fmt.Errorf("bench: recovery %w", errNoTarget)
	}
	bin, err := serverBin(ctx, r.opts.ServerBin)
	if err != nil {
		return res, err
	}
	sk, err := startSink(r.opts.SinkAddr)
	if err != nil {
		return res, err
	}
	defer sk.Close()
	sk.setMode(sinkStall)

	dir, cleanup, err := r.tempDir(ScenarioRecovery)
	if err != nil {
		return res, err
	}
	defer cleanup()
	cfg := serverConfig(r.opts.Source, r.opts.Secret, []string{"sink"}, []destConfig{{
		slug: "sink", url: sk.hookURL(), ordering: r.opts.Ordering, maxInFlight: r.opts.MaxInFlight,
		timeout: recoveryTimeout, maxAttempts: 10, backoffBase: 100 * time.Millisecond,
	}})
	spec, err := newChildSpec(bin, dir, cfg, r.opts.ServerLog)
	if err != nil {
		return res, err
	}
	c, err := spec.start()
	if err != nil {
		return res, err
	}
	defer func() { c.kill() }() // a no-op once it has exited
	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		return res, err
	}

	// Pile up: closed loop until Events are acknowledged or Duration is up.
	sg := newSigner(r.client, spec.ingestURL(), r.opts.Source, r.opts.Secret, r.opts.BodySize)
	pile := load{closed: true, workers: r.opts.Concurrency, duration: r.opts.Duration, requests: r.opts.Events,
		newWorker: sg.newWorker, rec: newRecorder()}
	p := startProgress(r.opts.Progress, "recovery pile-up", r.opts.Duration, func() string {
		return fmt.Sprintf("%d/%d acked", pile.rec.ok.Load(), r.opts.Events)
	})
	pr := pile.run(ctx)
	p.stop()
	backlog := pr.rec.ok.Load()
	res.Errors = pr.rec.errs.Load()
	if err := pr.rec.firstError(); err != nil {
		res.FirstError = err.Error()
	}
	res.setExtra("backlog_events", float64(backlog))
	res.setExtra("pileup_throughput", pr.throughput())
	if backlog == 0 {
		return res, fmt.Errorf("bench: no event was acknowledged during the pile-up (first error: %v)", pr.rec.firstError())
	}
	if early := sk.stats().unique; early > 0 {
		res.setExtra("delivered_before_kill", float64(early))
	}

	// Crash, heal the sink, restart on the same data dir.
	c.kill()
	sk.setMode(sinkHealthy)
	restart := time.Now()
	sk.resetStats(restart, sg.prefix)
	c, err = spec.start()
	if err != nil {
		return res, err
	}
	if err := c.waitReady(ctx, 5*time.Minute); err != nil {
		return res, err
	}
	ready := time.Since(restart)
	p = startProgress(r.opts.Progress, "recovery drain", r.opts.DrainTimeout, func() string {
		return fmt.Sprintf("%d/%d delivered", sk.unique.Load(), backlog)
	})
	drainErr := sk.waitUnique(ctx, backlog, r.opts.DrainTimeout)
	p.stop()
	st := sk.stats()
	stopErr := c.stop(10 * time.Second)

	res.Count = st.unique
	res.Errors += max(0, backlog-st.unique)
	res.Latency = st.since // each event's delivery time after the restart
	res.setExtra("restart_to_ready_ms", msOf(ready))
	if !st.first.IsZero() {
		res.setExtra("restart_to_first_delivery_ms", msOf(st.first.Sub(restart)))
	}
	if drainErr == nil {
		drained := st.last.Sub(restart)
		res.setExtra("restart_to_drained_ms", msOf(drained))
		res.DurationSeconds = drained.Seconds()
		res.Throughput = float64(st.unique) / drained.Seconds()
	}
	res.setExtra("duplicate_deliveries", float64(st.receipts-st.unique))
	if drainErr != nil {
		return res, drainErr
	}
	if stopErr != nil {
		return res, stopErr
	}
	return res, ctx.Err()
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
