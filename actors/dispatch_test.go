package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Schedule never waits for a worker: tasks that block together all run at
// once, however many there are.
func TestWorkersNeverQueue(t *testing.T) {
	w := newWorkers()
	defer w.stop(10 * time.Second)
	burst(t, w, maxIdleWorkers+50)
}

// burst schedules n tasks that each wait until all n have started, and
// fails if they do not all start: Schedule queued some of them.
func burst(t *testing.T, w *workers, n int) {
	t.Helper()
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	for range n {
		w.Schedule(func() {
			started.Done()
			<-release
		})
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not every blocked task started: Schedule queued them")
	}
	close(release)
}

// After a burst at most maxIdleWorkers stay, and later tasks run on them
// without starting goroutines.
func TestWorkersKeepAtMostMaxIdle(t *testing.T) {
	w := newWorkers()
	defer w.stop(10 * time.Second)
	burst(t, w, maxIdleWorkers+50)
	deadline := time.Now().Add(10 * time.Second)
	for w.idle.Load() != maxIdleWorkers || goroutinesOf(w) != maxIdleWorkers {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle, %d running; want %d kept", w.idle.Load(), goroutinesOf(w), maxIdleWorkers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := w.started.Load()
	var ran atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		w.Schedule(func() { ran.Add(1); wg.Done() })
		wg.Wait() // one at a time: an idle worker is always there
	}
	if ran.Load() != 100 || w.started.Load() != before {
		t.Fatalf("ran %d, goroutines started %d -> %d: idle workers were not reused", ran.Load(), before, w.started.Load())
	}
}

// stop waits for running tasks, ends the idle workers, and a task
// scheduled later still runs. The package's goleak check sees nothing left.
func TestWorkersStop(t *testing.T) {
	w := newWorkers()
	var finished atomic.Bool
	started := make(chan struct{})
	w.Schedule(func() {
		close(started)
		time.Sleep(50 * time.Millisecond)
		finished.Store(true)
	})
	<-started
	w.Schedule(func() {}) // leaves an idle worker behind
	if !w.stop(10 * time.Second) {
		t.Fatal("stop timed out")
	}
	if !finished.Load() {
		t.Fatal("stop returned before the running task ended")
	}
	late := make(chan struct{})
	w.Schedule(func() { close(late) })
	select {
	case <-late:
	case <-time.After(5 * time.Second):
		t.Fatal("a task scheduled after stop never ran")
	}
	w.wg.Wait()
}

// goroutinesOf counts w's goroutines: those started and not ended.
func goroutinesOf(w *workers) int32 { return w.started.Load() - w.ended.Load() }
