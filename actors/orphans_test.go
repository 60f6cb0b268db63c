package actors

import (
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// An event committed with an outbox entry for an ordered destination whose
// ingest died before its inbox entry (the sender never heard 2xx) reaches
// the destination without a takeover: once the member's sweep has seen it
// waiting for orphanAfter, and only once.
func TestMemberTakesOrphans(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	clock := NewManualClock(testStart)
	tn := startNodeWith(t, t.TempDir(), clock, baseChange(srv.URL, model.Destination{Ordering: model.OrderingOrdered}), func(c *Config) { c.Member = true })
	m := &testMember{localWriter: localWriter{tn.db}, lease: map[uint16]bool{}}
	tn.UseMember(m)
	part := tn.db.DestPartition("app")
	m.setLease(part, true)
	tn.Own(part)
	quiet := func(what string, want int) {
		t.Helper()
		time.Sleep(150 * time.Millisecond)
		if got := s.received(); len(got) != want {
			t.Fatalf("%s: delivered %v, want %d", what, got, want)
		}
	}

	orphan := putReplicated(t, tn.db, 1<<12, "orphan", "app")
	tn.EventApplied(orphan, []string{"app"}) // inboxed: the destination waits for its inbox entry
	quiet("before any sweep", 0)
	clock.Advance(sweepEvery)
	quiet("seen once (an ingest may still be on its way to the inbox)", 0)
	clock.Advance(sweepEvery)
	s.wait(t, "orphan")
	waitStatus(t, tn, orphan.ID(), wal.StatusDelivered)
	eventually(t, "its outbox entry is acknowledged", func() bool {
		n := 0
		tn.db.ScanOutbox(orphan.Partition, func(wal.OutboxEntry) { n++ })
		return n == 0
	})
	clock.Advance(sweepEvery)
	quiet("a sweep after it was taken", 1)
}
