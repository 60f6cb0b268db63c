package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

func (r *runner) e2e(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioE2E, Mode: r.mode(), Unit: "deliveries/s"}
	if r.opts.Target != "" && r.opts.SinkAddr == "" {
		return res, errors.New("bench: e2e against --target needs --sink-addr, the address the server's destination posts to (http://SINK-ADDR/hook)")
	}
	sk, err := startSink(r.opts.SinkAddr)
	if err != nil {
		return res, err
	}
	defer sk.Close()
	srv, err := r.startIngestServer(ctx, ScenarioE2E, sk, 10, 5*time.Second, false)
	if err != nil {
		return res, err
	}
	defer srv.close()

	warm := newSigner(r.client, srv.base, r.opts.Source, r.opts.Secret, r.opts.BodySize)
	main := newSigner(r.client, srv.base, r.opts.Source, r.opts.Secret, r.opts.BodySize)
	sk.resetStats(time.Time{}, main.prefix)
	var mark cpuMark
	lr := r.measure(ctx, ScenarioE2E, func(warmup bool) load {
		if warmup {
			return r.phase(warm.newWorker)
		}
		mark = markCPU(srv.pids())
		return r.phase(main.newWorker)
	})
	accepted := lr.rec.ok.Load()
	// What was delivered while the load ran, and how fast the rest went
	// once it stopped: a destination that cannot keep up shows here.
	loadEnd, duringLoad := time.Now(), sk.unique.Load()
	p := startProgress(r.opts.Progress, "e2e drain", r.opts.DrainTimeout, func() string {
		return fmt.Sprintf("%d/%d delivered", sk.unique.Load(), accepted)
	})
	drainErr := sk.waitUnique(ctx, accepted, r.opts.DrainTimeout)
	p.stop()
	st := sk.stats()
	// From the measured phase's start to the last delivery (the drain
	// included; a warmup event still in flight then counts too).
	if per := mark.perEvent(st.unique); per > 0 && len(srv.pids()) > 0 {
		res.setExtra(extraCPUDelivery, per)
	}
	srv.close()

	elapsed := st.last.Sub(lr.start)
	res.Count = st.unique
	res.Errors = lr.rec.errs.Load() + max(0, accepted-st.unique)
	if elapsed > 0 {
		res.Throughput = float64(st.unique) / elapsed.Seconds()
		res.DurationSeconds = elapsed.Seconds()
	}
	res.Latency = st.latency
	if err := lr.rec.firstError(); err != nil {
		res.FirstError = err.Error()
	}
	res.setExtra("accepted", float64(accepted))
	res.setExtra("ingest_throughput", lr.throughput())
	res.setExtra("ingest_p99_ms", lr.rec.latency().P99)
	res.setExtra("duplicate_deliveries", float64(st.receipts-st.unique))
	res.setExtra("delivered_during_load", float64(duringLoad))
	if rest, d := st.unique-duringLoad, st.last.Sub(loadEnd); rest > 0 && d > 0 {
		res.setExtra("drain_per_s", float64(rest)/d.Seconds())
	}
	lateExtra(&res, lr)
	if drainErr != nil {
		return res, drainErr
	}
	if r.opts.Ordering == "ordered" {
		// The same sink, one request at a time, nothing else running.
		ceiling, err := sequentialPosts(ctx, sk.hookURL(), r.opts.BodySize, r.opts.Duration)
		if err != nil {
			return res, err
		}
		res.setExtra(extraSequentialCeiling, ceiling)
		res.setExtra(extraRatioToSequential, res.Throughput/ceiling)
		bin, err := serverBin(ctx, r.opts.ServerBin)
		if err != nil {
			return res, err
		}
		if ceiling, err = sequentialPostsChild(ctx, bin, sk.hookURL(), r.opts.BodySize, r.opts.Duration); err != nil {
			return res, err
		}
		res.setExtra(extraSequentialCeiling2Pro, ceiling)
		res.setExtra(extraRatioToSequential2Pro, res.Throughput/ceiling)
	}
	if r.opts.Baseline {
		if err := r.baselineIngest(ctx, &res); err != nil {
			return res, err
		}
	}
	return res, ctx.Err()
}
