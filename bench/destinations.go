package bench

import (
	"context"
	"fmt"
	"time"
)

// destinations: start the server with N idle destinations, wait until it is
// ready and has settled, and read its resident memory. With --baseline the
// same server with one destination is measured first, and the ratio is of RSS.
func (r *runner) destinations(ctx context.Context) (ScenarioResult, error) {
	n := r.opts.Destinations
	res := ScenarioResult{Name: ScenarioDestinations, Mode: fmt.Sprintf("%d idle", n), Unit: "MB RSS"}
	if r.opts.Target != "" {
		return res, fmt.Errorf("bench: destinations %w", errNoTarget)
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

	var base idleMemory
	if r.opts.Baseline {
		if base, err = r.idleMemory(ctx, bin, sk, 1); err != nil {
			return res, fmt.Errorf("baseline (1 destination): %w", err)
		}
	}
	m, err := r.idleMemory(ctx, bin, sk, n)
	if err != nil {
		return res, err
	}
	res.Throughput = float64(m.rssKB) / 1024
	res.Count = int64(n)
	res.DurationSeconds = m.settled.Seconds()
	res.setExtra("ready_ms", msOf(m.ready))
	res.setExtra("peak_rss_mb", float64(m.hwmKB)/1024)
	if r.opts.Baseline {
		res.BaselineThroughput = float64(base.rssKB) / 1024
		if base.rssKB > 0 {
			res.Ratio = float64(m.rssKB) / float64(base.rssKB)
		}
		res.setExtra("baseline_ready_ms", msOf(base.ready))
		if n > 1 {
			res.setExtra("kb_per_destination", float64(m.rssKB-base.rssKB)/float64(n-1))
		}
	} else if n > 0 {
		res.setExtra("kb_per_destination_upper_bound", float64(m.rssKB)/float64(n))
	}
	return res, ctx.Err()
}

type idleMemory struct {
	rssKB, hwmKB int64
	ready        time.Duration // start to ready
	settled      time.Duration // how long it idled before the reading
}

// idleMemory starts a server with n destinations, waits for it to be ready
// and idle, reads VmRSS and VmHWM, and stops it.
func (r *runner) idleMemory(ctx context.Context, bin string, sk *sink, n int) (idleMemory, error) {
	var m idleMemory
	dir, cleanup, err := r.tempDir(ScenarioDestinations)
	if err != nil {
		return m, err
	}
	defer cleanup()
	dests := make([]destConfig, n)
	for i := range dests {
		dests[i] = destConfig{
			slug: fmt.Sprintf("d%06d", i), url: sk.hookURL(), ordering: r.opts.Ordering, maxInFlight: r.opts.MaxInFlight,
			timeout: 5 * time.Second, maxAttempts: 3, backoffBase: 100 * time.Millisecond,
		}
	}
	spec, err := newChildSpec(bin, dir, serverConfig(r.opts.Source, r.opts.Secret, []string{dests[0].slug}, dests), r.opts.ServerLog)
	if err != nil {
		return m, err
	}
	c, err := spec.start()
	if err != nil {
		return m, err
	}
	defer func() { _ = c.stop(10 * time.Second) }()
	p := startProgress(r.opts.Progress, fmt.Sprintf("destinations: %d starting", n), time.Minute, func() string { return "" })
	err = c.waitReady(ctx, 5*time.Minute)
	p.stop()
	if err != nil {
		return m, err
	}
	m.ready = time.Since(c.started)

	// Let start-up garbage be collected and lazily started work settle: half
	// the duration, at most 5 s.
	settle := min(r.opts.Duration/2, 5*time.Second)
	p = startProgress(r.opts.Progress, fmt.Sprintf("destinations: %d idle", n), settle, func() string { return "" })
	t := time.NewTimer(settle)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	p.stop()
	m.settled = settle
	if m.rssKB, err = procStatusKB(c.pid(), "VmRSS"); err != nil {
		return m, err
	}
	if m.hwmKB, err = procStatusKB(c.pid(), "VmHWM"); err != nil {
		return m, err
	}
	return m, ctx.Err()
}
