package actors

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// A cluster member carries out its part of a replay another member split:
// under the id it is given, to the destinations it is given (only those
// it delivers), once per id.
func TestMemberReplayPart(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	tn := startNodeWith(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{}), func(c *Config) { c.Member = true })
	m := &testMember{localWriter: localWriter{tn.db}, lease: map[uint16]bool{}}
	tn.UseMember(m)
	part := tn.db.DestPartition("app")
	m.setLease(part, true)
	ev := putReplicated(t, tn.db, 1<<12, "k", "app", "elsewhere")
	tn.Own(part)
	s.wait(t, "k")
	// A replay of an event still pending rides on its delivery
	// (TestReplaysRidingOneDelivery): wait until that one is recorded.
	eventually(t, "the first delivery is recorded", func() bool {
		st, err := tn.db.DeliveryStatus("app", ev.Seq)
		return err == nil && st == wal.StatusDelivered
	})
	if other := tn.db.DestPartition("elsewhere"); other == part {
		t.Fatalf("test setup: elsewhere shares app's partition %d", part)
	}

	id := NewReplayID(time.Now())
	if !model.ValidReplayID(id) {
		t.Fatalf("NewReplayID = %q, not a valid id", id)
	}
	rec := model.Replay{ID: id, EventID: ev.ID(), Destinations: []string{"app"}, RequestedBy: "test"}
	got, err := tn.StartReplay(rec, "event", ev.ID())
	if err != nil || got.ID != id {
		t.Fatalf("StartReplay(part %s) = %+v, %v", id, got, err)
	}
	s.wait(t, "k")
	eventually(t, "the part completes", func() bool {
		r, err := tn.Replay(id)
		return err == nil && r.Status == model.ReplayCompleted && r.Total == 1 && r.Succeeded == 1
	})
	// The same part asked again (a forwarding member whose first try timed
	// out) is the one that ran: answered, not run twice; another request
	// under the same id is a conflict.
	if again, err := tn.StartReplay(rec, "event", ev.ID()); err != nil || again.ID != id || again.Status != model.ReplayCompleted {
		t.Fatalf("the same part again: %+v, %v; want the completed part", again, err)
	}
	other := rec
	other.RequestedBy = "someone else"
	if _, err := tn.StartReplay(other, "event", ev.ID()); !errors.Is(err, ErrConflict) {
		t.Fatalf("another part under the same id: %v, want ErrConflict", err)
	}
	var fe *model.FieldError
	if _, err := tn.StartReplay(model.Replay{ID: "rpl_x", EventID: ev.ID(), Destinations: []string{"app"}}, "", ""); !errors.As(err, &fe) {
		t.Fatalf("a malformed id: %v, want a field error", err)
	}
	if _, err := tn.StartReplay(model.Replay{EventID: ev.ID(), Destinations: []string{"app", "elsewhere"}}, "", ""); !errors.Is(err, ErrElsewhere) {
		t.Fatalf("a part naming a destination delivered elsewhere: %v, want ErrElsewhere", err)
	}
	if n := len(s.received()); n != 2 {
		t.Fatalf("app received %d deliveries, want 2 (the event and one replay)", n)
	}
}

func TestSamePart(t *testing.T) {
	since := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	base := model.Replay{ID: "rpl_000000000000000000000001", RequestedBy: "ops", Destinations: []string{"a", "b"},
		Filter: &model.EventFilter{Source: "shop", Since: since}}
	for _, tc := range []struct {
		name string
		edit func(*model.Replay)
		same bool
	}{
		{"the same request", func(*model.Replay) {}, true},
		{"its record (status, tallies)", func(r *model.Replay) { r.Status, r.Total, r.Succeeded = model.ReplayCompleted, 4, 4 }, true},
		{"an equal filter read back", func(r *model.Replay) { f := *r.Filter; r.Filter = &f }, true},
		{"another caller", func(r *model.Replay) { r.RequestedBy = "eve" }, false},
		{"other destinations", func(r *model.Replay) { r.Destinations = []string{"a"} }, false},
		{"another filter", func(r *model.Replay) { r.Filter = &model.EventFilter{Source: "shop"} }, false},
		{"no filter", func(r *model.Replay) { r.Filter = nil }, false},
		{"one event", func(r *model.Replay) { r.EventID = "evt_1" }, false},
		{"dead letters", func(r *model.Replay) { r.DeadLetters = true }, false},
	} {
		b := base
		b.Destinations = slices.Clone(base.Destinations)
		tc.edit(&b)
		if got := samePart(base, b); got != tc.same {
			t.Errorf("%s: samePart = %v, want %v", tc.name, got, tc.same)
		}
	}
}
