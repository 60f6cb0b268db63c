package actors

import (
	"fmt"
	"sync"
	"testing"
)

// TestAttemptLine: a line runs its jobs one at a time, in order; a chained
// job runs only after the job it follows ran with a 2xx, and is reported
// skipped otherwise; jobs of an incarnation that has failed since, or
// handed over while the node closes, are dropped without a report.
func TestAttemptLine(t *testing.T) {
	type job struct {
		inc, id, after uint64
		ok             bool // what the receiver answers when it runs
	}
	for _, tc := range []struct {
		name    string
		current uint64 // the entry's incarnation
		closing bool
		jobs    []job
		want    string
	}{
		{name: "chain", current: 1, jobs: []job{{1, 1, 0, true}, {1, 2, 1, true}, {1, 3, 2, true}},
			want: "[ran#1 ran#2 ran#3]"},
		{name: "a failure skips what follows", current: 1, jobs: []job{{1, 1, 0, true}, {1, 2, 1, false}, {1, 3, 2, true}, {1, 4, 3, true}, {1, 5, 0, true}},
			want: "[ran#1 ran#2 skipped#3 skipped#4 ran#5]"},
		{name: "chained to another attempt", current: 1, jobs: []job{{1, 1, 0, true}, {1, 3, 2, true}},
			want: "[ran#1 skipped#3]"},
		{name: "an old incarnation's jobs are dropped", current: 2, jobs: []job{{1, 7, 0, true}, {1, 8, 7, true}, {2, 1, 0, true}, {2, 2, 1, true}},
			want: "[ran#1 ran#2]"},
		{name: "ids of another incarnation do not chain", current: 2, jobs: []job{{2, 1, 0, false}, {2, 2, 1, true}},
			want: "[ran#1 skipped#2]"},
		{name: "closing", current: 1, closing: true, jobs: []job{{1, 1, 0, true}, {1, 2, 1, true}},
			want: "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{}
			n.closing.Store(tc.closing)
			e := &destEntry{}
			e.incarnations.Store(tc.current)
			var (
				mu  sync.Mutex
				log = []string{}
			)
			note := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
			// Queue everything before the line runs, so what it does
			// depends on nothing but the jobs.
			e.line.running = true
			for _, j := range tc.jobs {
				n.attempts.Add(1)
				e.line.add(n, e, lineJob{inc: j.inc, id: j.id, after: j.after,
					run:     func() bool { note(fmt.Sprint("ran#", j.id)); return j.ok },
					skipped: func() { note(fmt.Sprint("skipped#", j.id)) },
				})
			}
			e.line.loop(n, e)
			n.attempts.Wait()
			if got := fmt.Sprint(log); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if e.line.running || len(e.line.jobs) != 0 {
				t.Fatalf("line still running (%v) or holding %d jobs", e.line.running, len(e.line.jobs))
			}
		})
	}
}
