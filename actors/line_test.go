package actors

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/webhookops/webhookops/wal/model"
)

// TestAttemptLine: a line runs its jobs one at a time, in order; a chained
// job runs only after the job it follows ran with a 2xx, and is reported
// skipped otherwise; jobs of an incarnation that has failed since, or
// handed over while the node closes, are dropped without a report; jobs
// recalled before they start are reported skipped.
func TestAttemptLine(t *testing.T) {
	type job struct {
		inc, id, after uint64
		ok             bool // what the receiver answers when it runs
	}
	for _, tc := range []struct {
		name    string
		current uint64 // the entry's incarnation
		closing bool
		recall  [2]uint64 // incarnation, up to id
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
		{name: "recalled", current: 2, recall: [2]uint64{2, 2}, jobs: []job{{2, 1, 0, true}, {2, 2, 1, true}, {2, 3, 2, true}, {2, 4, 0, true}},
			want: "[skipped#1 skipped#2 skipped#3 ran#4]"},
		{name: "a recall of another incarnation", current: 2, recall: [2]uint64{1, 9}, jobs: []job{{2, 1, 0, true}, {2, 2, 1, true}},
			want: "[ran#1 ran#2]"},
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
			e.line.recall(tc.recall[0], tc.recall[1])
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

// TestPauseStopsTheChain: an ordered destination pauses from the next
// event on, not after the attempts it had handed to its line: only the one
// on the wire when the pause came is delivered, and the rest follow, in
// order, once it resumes.
func TestPauseStopsTheChain(t *testing.T) {
	s, srv, entered, release := newHoldingSink(t, "a")
	ordered := model.Destination{Ordering: model.OrderingOrdered}
	tn := startNode(t, t.TempDir(), nil, baseChange(srv.URL, ordered))
	keys := []string{"a", "b", "c", "d", "e"}
	for _, k := range keys {
		tn.ingest(t, "src", k, k)
	}
	<-entered
	paused := ordered
	paused.Paused = true
	if err := tn.Apply(baseChange(srv.URL, paused)); err != nil {
		t.Fatal(err)
	}
	// The actor handles its mailbox in order: once it answers, it has
	// seen the change.
	if _, err := tn.DestinationStats(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	close(release)
	s.wait(t, "a")
	eventually(t, "the recalled attempts to come back", func() bool {
		st, err := tn.DestinationStats(context.Background(), "app")
		return err == nil && st.InFlight == 0
	})
	if got := s.received(); fmt.Sprint(got) != "[a]" {
		t.Fatalf("paused, the sink saw %v, want [a]", got)
	}
	if err := tn.Apply(baseChange(srv.URL, ordered)); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys[1:] {
		s.wait(t, k)
	}
	if got := s.received(); fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Fatalf("sink saw %v, want %v", got, keys)
	}
}
