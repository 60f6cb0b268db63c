package destsm

import (
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

func TestBreakerString(t *testing.T) {
	for b, want := range map[Breaker]string{BreakerClosed: "closed", BreakerOpen: "open", BreakerProbing: "probing", 7: "Breaker(7)"} {
		if got := b.String(); got != want {
			t.Errorf("Breaker(%d).String() = %q, want %q", b, got, want)
		}
	}
}

// TestWindowBelowOneHoldsOne: a window below one would hold nothing and
// deliver nothing; it is one.
func TestWindowBelowOneHoldsOne(t *testing.T) {
	m := New(Params{Slug: "app"}, State{Exists: true, Dest: model.Destination{}})
	effects := m.Step(scriptEpoch, Enqueue{Seq: 1, EventID: "e1"})
	if len(effects) != 2 {
		t.Fatalf("effects %v, want a write and an attempt", effects)
	}
	if _, ok := effects[1].(StartAttempt); !ok {
		t.Fatalf("second effect %v, want an attempt", effects[1])
	}
}

// TestLoadedSkipsWhatItHolds: a page never duplicates an entry already in
// memory, even if the shell hands one back.
func TestLoadedSkipsWhatItHolds(t *testing.T) {
	m := New(Params{Slug: "app", Window: 4}, State{Exists: true, Dest: model.Destination{Paused: true}, NextQSeq: 3, Depth: 2})
	m.Step(scriptEpoch, Reconfigure{Exists: true, Dest: model.Destination{Paused: true}})
	m.Step(scriptEpoch, Loaded{Entries: []Entry{{QSeq: 1, Seq: 1}, {QSeq: 2, Seq: 2}}})
	m.Step(scriptEpoch, Loaded{Entries: []Entry{{QSeq: 2, Seq: 2}}})
	if len(m.queue) != 2 {
		t.Fatalf("queue holds %d entries, want 2", len(m.queue))
	}
	if depth, dead := m.Counts(); depth != 2 || dead != 0 {
		t.Fatalf("Counts = %d, %d", depth, dead)
	}
	// An attempt id of zero is never one the machine started.
	if out := m.Step(scriptEpoch, AttemptDone{Attempt: 0}); len(out) != 0 {
		t.Fatalf("attempt 0 produced %v", out)
	}
}

// TestStepDoesNotReadTheClock: the same messages at the same times give the
// same effects, run after run.
func TestStepDoesNotReadTheClock(t *testing.T) {
	run := func() string {
		m := New(Params{Slug: "app", Window: 8, Rand: func(n int64) int64 { return n / 3 }}, State{Exists: true,
			Dest: model.Destination{Ordering: model.OrderingParallel, MaxInFlight: 3, RateLimit: 7}})
		var log []Effect
		at := scriptEpoch
		for i := uint64(1); i <= 5; i++ {
			log = append(log, m.Step(at, Enqueue{Seq: i, EventID: "e"})...)
		}
		for i := uint64(1); i <= 3; i++ {
			at = at.Add(time.Second)
			log = append(log, m.Step(at, AttemptDone{Attempt: i, Started: at, Result: Result{StatusCode: 500}})...)
		}
		s := ""
		for _, e := range log {
			s += e.String() + "\n"
		}
		return s
	}
	first := run()
	time.Sleep(time.Millisecond)
	if again := run(); again != first {
		t.Fatalf("different effects for the same input:\n%s\nvs\n%s", first, again)
	}
}

// TestChainIsCapped: however deep the pipeline, an ordered destination
// hands over at most MaxChained attempts ahead.
func TestChainIsCapped(t *testing.T) {
	m := New(Params{Slug: "app", Window: 4 * MaxChained, Pipeline: 4 * MaxChained}, State{Exists: true,
		Dest: model.Destination{Ordering: model.OrderingOrdered}})
	attempts := 0
	for seq := uint64(1); seq <= 2*MaxChained; seq++ {
		for _, e := range m.Step(scriptEpoch, Enqueue{Seq: seq, EventID: "e"}) {
			if _, ok := e.(StartAttempt); ok {
				attempts++
			}
		}
	}
	if attempts != MaxChained || m.Stats().InFlight != MaxChained {
		t.Fatalf("%d attempts handed over, %d in flight; want %d", attempts, m.Stats().InFlight, MaxChained)
	}
}

// TestSpareEventsStayWithinTheWindow: however many entries are appended
// while the window is behind the disk, the events held for them and the
// queue in memory never hold more than the window.
func TestSpareEventsStayWithinTheWindow(t *testing.T) {
	const window = 8
	m := New(Params{Slug: "app", Window: window}, State{Exists: true, Dest: model.Destination{Ordering: model.OrderingOrdered, Paused: true}})
	for seq := uint64(1); seq <= 10*window; seq++ {
		m.Step(scriptEpoch, Enqueue{Seq: seq, EventID: "e", Payload: seq})
		if n := len(m.queue) + len(m.spare); n > window {
			t.Fatalf("after %d appends: %d in the queue and %d spare events, over the window of %d", seq, len(m.queue), len(m.spare), window)
		}
	}
	if len(m.queue) != window || len(m.spare) != 0 {
		t.Fatalf("queue %d, spare %d: want a full queue and nothing spare", len(m.queue), len(m.spare))
	}
}
