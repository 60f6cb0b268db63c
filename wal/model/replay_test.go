package model

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestEventIDRoundTrip(t *testing.T) {
	for _, c := range []struct {
		part uint16
		seq  uint64
	}{{0, 0}, {0, 1}, {7, 123456789}, {math.MaxUint16, math.MaxUint64}} {
		id := EventID(c.part, c.seq)
		part, seq, ok := ParseEventID(id)
		if !ok || part != c.part || seq != c.seq {
			t.Errorf("ParseEventID(%q) = %d, %d, %v; want %d, %d", id, part, seq, ok, c.part, c.seq)
		}
	}
	// Ids of one partition sort as their sequences.
	if a, b := EventID(3, 9), EventID(3, 10); a >= b {
		t.Errorf("%q sorts after %q", a, b)
	}
	for _, bad := range []string{"", "evt_", "evt_00000000000000000000a", "xyz_00000000000000000001", "evt_0000000000000000000g", "evt_00000000000000000001 "} {
		if _, _, ok := ParseEventID(bad); ok {
			t.Errorf("ParseEventID(%q) accepted", bad)
		}
	}
}

func TestEventFilterValidate(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name  string
		f     EventFilter
		field string // "" valid
	}{
		{"empty", EventFilter{}, ""},
		{"all set", EventFilter{Source: "shop", Destination: "app", Status: EventDeadLettered, EventType: "invoice.*", Since: t0, Until: t0.Add(time.Hour), IdempotencyKey: "k"}, ""},
		{"every status", EventFilter{Status: EventNoDestinations}, ""},
		{"unknown status", EventFilter{Status: "lost"}, "status"},
		{"bad source", EventFilter{Source: "Shop!"}, "source"},
		{"bad destination", EventFilter{Destination: "-"}, "destination"},
		{"until before since", EventFilter{Since: t0, Until: t0.Add(-time.Second)}, "until"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.Validate()
			var fe *FieldError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("Validate = %v; want valid", err)
			case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
				t.Fatalf("Validate = %v; want an error on %q", err, c.field)
			}
		})
	}
	if !(EventFilter{}).IsZero() || (EventFilter{Until: time.Now()}).IsZero() {
		t.Fatal("IsZero")
	}
}

func TestStatuses(t *testing.T) {
	for _, s := range []EventStatus{EventPending, EventDelivered, EventDeadLettered, EventNoDestinations} {
		if !s.Valid() || s.String() != string(s) {
			t.Errorf("%q", s)
		}
	}
	if EventStatus("").Valid() {
		t.Error("empty status is valid")
	}
	for s, done := range map[ReplayStatus]bool{ReplayQueued: false, ReplayRunning: false, ReplayCompleted: true, ReplayFailed: true} {
		if s.Finished() != done || s.String() != string(s) {
			t.Errorf("%q: Finished = %v", s, s.Finished())
		}
	}
}
