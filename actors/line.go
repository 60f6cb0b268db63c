package actors

import "sync"

// attemptLine runs an ordered destination's attempts one after another on
// one goroutine, in the order its machine handed them over. A chained
// attempt (destsm.StartAttempt.After) starts only if the attempt it
// follows ran on this line and got a 2xx; otherwise it is not started and
// is reported skipped. So the destination goes from one event's 2xx
// straight to the next event's request, without a hop through its actor
// in between, and still never starts an event before the one ahead of it
// was accepted.
//
// The line belongs to the destination's registry entry, so it outlives a
// supervisor restart: what a new incarnation hands over queues behind
// what the failed one handed over, whose attempts are dropped unstarted
// (its reports would be dropped anyway), and never runs beside the
// attempt the failed one had on the wire.
//
// The goroutine runs while there is work and exits when the line is
// empty; every job holds a count in Node.attempts until it is done, so
// Close waits for the line as it waits for any attempt.
type attemptLine struct {
	mu      sync.Mutex // guards the fields below
	jobs    []lineJob
	running bool
	// Jobs of incarnation recallInc with an id up to recallUpTo are not
	// started but reported skipped (destsm.Recall).
	recallInc, recallUpTo uint64

	// Only the line's goroutine touches these: the last job it took.
	lastInc, lastID uint64
	lastOK          bool
}

// lineJob is one attempt on a line.
type lineJob struct {
	inc, id, after uint64 // incarnation, attempt id, the attempt it follows (0: none)
	// run performs the attempt and reports it; it reports whether the
	// receiver answered 2xx.
	run func() bool
	// skipped reports the attempt not started.
	skipped func()
}

// add queues j; the caller counted it in Node.attempts (beginAttempt).
func (l *attemptLine) add(n *Node, e *destEntry, j lineJob) {
	l.mu.Lock()
	l.jobs = append(l.jobs, j)
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		go l.loop(n, e)
	}
}

func (l *attemptLine) loop(n *Node, e *destEntry) {
	for {
		l.mu.Lock()
		if len(l.jobs) == 0 {
			l.running = false
			l.jobs = nil
			l.mu.Unlock()
			return
		}
		j := l.jobs[0]
		l.jobs[0] = lineJob{}
		l.jobs = l.jobs[1:]
		recalled := j.inc == l.recallInc && j.id <= l.recallUpTo
		l.mu.Unlock()
		l.take(n, e, j, recalled)
	}
}

// recall makes the jobs of incarnation inc with an id up to upTo that are
// not started yet be skipped.
func (l *attemptLine) recall(inc, upTo uint64) {
	l.mu.Lock()
	l.recallInc, l.recallUpTo = inc, upTo
	l.mu.Unlock()
}

func (l *attemptLine) take(n *Node, e *destEntry, j lineJob, recalled bool) {
	defer n.attempts.Done()
	ok := false
	switch {
	case j.inc != e.incarnations.Load() || n.closing.Load():
		// Handed over by an incarnation that has failed since (the new
		// one decides afresh from disk), or the node is closing: the
		// event stays queued.
	case recalled, j.after != 0 && (j.inc != l.lastInc || j.after != l.lastID || !l.lastOK):
		j.skipped()
	default:
		ok = j.run()
	}
	l.lastInc, l.lastID, l.lastOK = j.inc, j.id, ok
}
