package bench

import (
	"context"
	"fmt"
	"time"
)

// alternate runs our load and the baseline's in Options.Rounds alternating
// slices of Duration/Rounds each, in ABBA order (ours, base, base, ours, ours,
// base, ...), so a noisy neighbour or a drift over the run hits both sides
// alike. Each side keeps one recorder across its slices and its throughput is
// its requests over the sum of its slices. quiesce, if set, runs before each
// baseline slice (the gateway finishes its deliveries, so the baseline does
// not share the machine with our backlog); its time counts for neither side.
func (r *runner) alternate(ctx context.Context, label string, ours, base func(warmup bool) load, quiesce func(context.Context)) (loadResult, loadResult) {
	return r.alternateCPU(ctx, label, ours, base, quiesce, nil)
}

// alternateCPU is alternate that also measures the CPU time each side
// costs the machine: this process's, plus oursPIDs' (the child processes
// on our side's path) for our slices. The baseline's is this process's.
func (r *runner) alternateCPU(ctx context.Context, label string, ours, base func(warmup bool) load, quiesce func(context.Context), oursPIDs []int) (loadResult, loadResult) {
	rounds := max(r.opts.Rounds, 1)
	if r.opts.Warmup > 0 {
		for _, mk := range []func(bool) load{ours, base} {
			w := mk(true)
			w.duration = r.opts.Warmup
			p := startProgress(r.opts.Progress, label+" warmup", w.duration, func() string { return "" })
			w.run(ctx)
			p.stop()
		}
	}
	o, b := ours(false), base(false)
	if o.rec == nil {
		o.rec = newRecorder()
	}
	if b.rec == nil {
		b.rec = newRecorder()
	}
	slice := r.opts.Duration / time.Duration(rounds)
	perSlice := max(r.opts.Requests/int64(rounds), 1)
	p := startProgress(r.opts.Progress, label+" vs baseline", 2*r.opts.Duration, func() string {
		return fmt.Sprintf("%d/%d ok %d err", o.rec.ok.Load(), b.rec.ok.Load(), o.rec.errs.Load()+b.rec.errs.Load())
	})
	defer p.stop()

	var res [2]loadResult // ours, base
	res[0].rec, res[1].rec = o.rec, b.rec
	res[0].cpuOK, res[1].cpuOK = true, true
	pids := [2][]int{oursPIDs, nil}
	for i := range rounds {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, side := range order {
			if ctx.Err() != nil {
				break
			}
			l := o
			if side == 1 {
				l = b
				if quiesce != nil {
					quiesce(ctx)
				}
			}
			l.duration = slice
			l.requests = perSlice
			l.firstSeq = int64(i) * perSlice // one signer per side: ids stay unique across slices
			cpu0, ok0 := processCPU(pids[side])
			lr := l.run(ctx)
			cpu1, ok1 := processCPU(pids[side])
			res[side].cpu += cpu1 - cpu0
			res[side].cpuOK = res[side].cpuOK && ok0 && ok1
			if res[side].start.IsZero() {
				res[side].start = lr.start
			}
			res[side].elapsed += lr.elapsed
		}
	}
	return res[0], res[1]
}
