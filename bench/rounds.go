package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// extraOthersCores is the CPU the machine's other processes used while a
// scenario measured, in cores.
const extraOthersCores = "others_cores"

// neighbourWatch measures the CPU the rest of the machine (every process
// but this one and pids) spends while a scenario runs. Paths that run in
// different numbers of processes get different shares of a loaded machine,
// so their rate ratio moves with this figure.
type neighbourWatch struct {
	pids       []int
	start      time.Time
	busy, ours time.Duration
	ok         bool
}

func watchNeighbours(pids []int) *neighbourWatch {
	w := &neighbourWatch{pids: pids, start: time.Now()}
	var ok1, ok2 bool
	w.busy, ok1 = machineBusy()
	w.ours, ok2 = processCPU(pids)
	w.ok = ok1 && ok2
	return w
}

// cores is the neighbours' average CPU use since the watch began, in cores
// (0 and false when unknown).
func (w *neighbourWatch) cores() (float64, bool) {
	busy, ok1 := machineBusy()
	ours, ok2 := processCPU(w.pids)
	el := time.Since(w.start)
	if !w.ok || !ok1 || !ok2 || el <= 0 {
		return 0, false
	}
	return max(float64((busy-w.busy)-(ours-w.ours))/float64(el), 0), true
}

// report sets extraOthersCores on res when it is known, and says in
// res.Measures when the neighbours were busy enough to skew the rates.
func (w *neighbourWatch) report(res *ScenarioResult) {
	c, ok := w.cores()
	if !ok {
		return
	}
	res.setExtra(extraOthersCores, c)
	if note := neighbourNote(c); note != "" {
		if res.Measures != "" {
			res.Measures += "; "
		}
		res.Measures += note
	}
}

// busyNeighbours is the neighbours' CPU use, in cores, from which a
// report warns that its rate ratios are skewed.
const busyNeighbours = 0.5

// neighbourNote is the warning for a run during which the neighbours used
// cores, or "" when they were quiet enough.
func neighbourNote(cores float64) string {
	if cores < busyNeighbours {
		return ""
	}
	return fmt.Sprintf("rates taken while other processes used %.1f cores: the rate ratio leans towards the side that runs in more processes; the CPU ratios hold better", cores)
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/stat and
// /proc/PID/stat (100 on every Linux this runs on).
const clockTicks = 100

// parseMachineBusy reads the aggregate "cpu" line of Linux's /proc/stat
// (USER_HZ ticks).
func parseMachineBusy(line string) (time.Duration, bool) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 8} { // user nice system steal
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || v < 0 {
			return 0, false
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, true
}
