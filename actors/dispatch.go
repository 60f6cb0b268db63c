package actors

import (
	"sync"
	"sync/atomic"
	"time"
)

// workers runs the node's short tasks, its actors' mailbox turns and its
// delivery attempts, on goroutines it keeps: a turn handed over while a
// worker is idle runs on it, and otherwise on a new goroutine that then
// stays for the next one. protoactor's default dispatcher starts a
// goroutine for every turn of a mailbox, and every attempt had its own: each
// began with a small stack and grew it again (runtime.newstack/copystack,
// 3.4% of the server's CPU under bench e2e --max). It never queues or
// waits: Schedule starts a goroutine when no worker is idle, as before.
// At most maxIdleWorkers wait for work; the rest end when they are done.
type workers struct {
	work chan func() // unbuffered: a send succeeds only into an idle worker
	quit chan struct{}
	idle atomic.Int32
	wg   sync.WaitGroup
	// started and ended count the workers' goroutines (for tests).
	started, ended atomic.Int32
}

// maxIdleWorkers bounds the goroutines kept waiting (and their stacks)
// after a burst.
const maxIdleWorkers = 256

// dispatchThroughput is how many messages a mailbox turn processes, as
// protoactor's default dispatcher.
const dispatchThroughput = 300

func newWorkers() *workers {
	return &workers{work: make(chan func()), quit: make(chan struct{})}
}

// Schedule runs fn on an idle worker or a new one. It implements
// protoactor's mailbox.Dispatcher.
func (w *workers) Schedule(fn func()) {
	select {
	case w.work <- fn:
	default:
		w.wg.Add(1)
		w.started.Add(1)
		go w.run(fn)
	}
}

// Throughput implements mailbox.Dispatcher.
func (w *workers) Throughput() int { return dispatchThroughput }

func (w *workers) run(fn func()) {
	defer w.wg.Done()
	defer w.ended.Add(1)
	for {
		fn()
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		select {
		case fn = <-w.work:
			w.idle.Add(-1)
		case <-w.quit:
			w.idle.Add(-1)
			return
		}
	}
}

// stop ends the idle workers and waits, at most for wait, for every worker
// to finish its task; it reports whether they all did. A task scheduled
// after stop still runs, on a goroutine of its own that ends with it.
func (w *workers) stop(wait time.Duration) bool {
	close(w.quit)
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
