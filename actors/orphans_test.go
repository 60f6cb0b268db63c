package actors

import (
	"errors"
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

// An outbox entry whose acknowledgement was lost (the ack proposal failed;
// only a takeover acknowledges it again) outlived its event's retention:
// the sweep then handed the expired event to its ordered destination,
// whose actor waited for an event that no longer exists, failed after
// eventWait, and met it again at every restart (takeOver reads the
// outbox), delivering nothing more. Retention deletes the outbox entries
// of the events it expires, so the destination goes on.
func TestMemberSweepSkipsExpiredEvents(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	clock := NewManualClock(testStart)
	tn := startNodeWith(t, t.TempDir(), clock, baseChange(srv.URL, model.Destination{Ordering: model.OrderingOrdered}), func(c *Config) {
		c.Member = true
		c.Retention, c.DedupeWindow = time.Hour, time.Hour
	})
	m := &testMember{localWriter: localWriter{tn.db}, lease: map[uint16]bool{}}
	tn.UseMember(m)
	part := tn.db.DestPartition("app")
	m.setLease(part, true)
	tn.Own(part)

	// Delivered long ago; its outbox entry's acknowledgement was lost.
	old := &wal.Event{Partition: tn.db.EventPartition("src", "old"), Seq: 1 << 12, Source: "src", IdemKey: "old",
		ReceivedAt: testStart.Add(-2 * time.Hour), Body: []byte("{}"), Destinations: []string{"app"}}
	b := tn.db.NewBatch()
	b.PutEvent(old)
	b.PutOutbox(old.Partition, old.Seq, "app")
	b.PutDelivery(old.Seq, &wal.Delivery{Destination: "app", EventID: old.ID(), Status: wal.StatusDelivered})
	if err := tn.db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	clock.Advance(sweepEvery) // seen once; retention expires the event
	eventually(t, "the event expired", func() bool {
		_, err := tn.db.GetEvent(old.Partition, old.Seq)
		return errors.Is(err, wal.ErrNotFound)
	})
	clock.Advance(sweepEvery) // seen twice
	fresh := putReplicated(t, tn.db, 2<<12, "fresh", "app")
	tn.EventApplied(fresh, nil)
	s.wait(t, "fresh")
	n := 0
	tn.db.ScanOutbox(old.Partition, func(e wal.OutboxEntry) {
		if e.EventSeq == old.Seq {
			n++
		}
	})
	if n != 0 {
		t.Errorf("the expired event's outbox entry is still there")
	}
}
