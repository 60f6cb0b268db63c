package actors

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// testMember writes locally (a cluster's replication is not the point
// here) and holds leases as the test says.
type testMember struct {
	localWriter
	mu    sync.Mutex
	lease map[uint16]bool
}

func (m *testMember) Leased(part uint16) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease[part]
}

func (m *testMember) setLease(part uint16, yes bool) {
	m.mu.Lock()
	m.lease[part] = yes
	m.mu.Unlock()
}

func (m *testMember) Settle(string) { m.db.WaitCommitted() }

var _ Member = (*testMember)(nil)

// putReplicated stores an event with an outbox entry for each destination,
// as a partition's state machine would.
func putReplicated(t *testing.T, db *wal.DB, seq uint64, key string, dests ...string) *wal.Event {
	t.Helper()
	ev := &wal.Event{Partition: db.EventPartition("src", key), Seq: seq, Source: "src", IdemKey: key,
		ReceivedAt: time.Now().UTC(), Headers: [][2]string{{"X-Key", key}}, Body: []byte("{}"), Destinations: dests}
	b := db.NewBatch()
	b.PutEvent(ev)
	for _, d := range dests {
		b.PutOutbox(ev.Partition, seq, d)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	return ev
}

// A cluster member's node: it delivers nothing its member does not own,
// nothing without the lease, takes the outbox and the inbox when it owns
// the partition, stops when disowned, and waits for an inbox entry's event
// to be applied on its replica.
func TestMemberDeliversOnlyWhatItOwns(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	dir := t.TempDir()
	db, err := wal.Open(dir, wal.Config{Partitions: 8, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Replicated before the node starts: a single node would recover it.
	putReplicated(t, db, 1<<12, "before", "app")
	db.Close()

	var m *testMember
	tn := startNodeWith(t, dir, nil, baseChange(srv.URL, model.Destination{Ordering: "ordered"}), func(c *Config) {
		c.Member = true
		c.OrderedPipeline = 1
	})
	m = &testMember{localWriter: localWriter{tn.db}, lease: map[uint16]bool{}}
	tn.UseMember(m)
	part := tn.db.DestPartition("app")
	quiet := func(what string) {
		t.Helper()
		before := len(s.received())
		time.Sleep(150 * time.Millisecond)
		if got := s.received(); len(got) != before {
			t.Fatalf("%s: delivered %v", what, got[before:])
		}
	}
	quiet("at start, owning nothing")
	tn.EventApplied(putReplicated(t, tn.db, 2<<12, "unowned", "app"), nil)
	quiet("an applied event of a partition not owned")

	tn.Own(part)
	quiet("owned without the lease")
	m.setLease(part, true)
	s.wait(t, "before")
	s.wait(t, "unowned")

	// Live: an event fed from the outbox, then one through the inbox whose
	// event this replica has not applied yet.
	tn.EventApplied(putReplicated(t, tn.db, 3<<12, "live", "app"), nil)
	s.wait(t, "live")
	late := &wal.Event{Partition: tn.db.EventPartition("src", "late"), Seq: 4 << 12, Source: "src", IdemKey: "late",
		ReceivedAt: time.Now().UTC(), Headers: [][2]string{{"X-Key", "late"}}, Body: []byte("{}"), Destinations: []string{"app"}}
	tn.InboxApplied("app", late.Partition, late.Seq)
	quiet("an inbox entry whose event is not applied here yet")
	b := tn.db.NewBatch()
	b.PutEvent(late)
	if err := tn.db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "late")
	waitStatus(t, tn, late.ID(), wal.StatusDelivered)

	// Disowned: nothing more, not even with the lease; owned again, it
	// takes what the outbox kept meanwhile.
	tn.Disown(part)
	eventually(t, "the destination's actor stops", func() bool { return tn.LiveDestinations() == 0 })
	tn.EventApplied(putReplicated(t, tn.db, 5<<12, "meanwhile", "app"), nil)
	quiet("disowned")
	if st, err := tn.DestinationStats(t.Context(), "app"); err != nil || st.QueueDepth != 0 || st.Circuit != "elsewhere" {
		t.Fatalf("stats of a destination delivered elsewhere = %+v, %v", st, err)
	}
	tn.Own(part)
	s.wait(t, "meanwhile")
	if got := s.received(); len(got) != 5 {
		t.Fatalf("delivered %v, want each of the five once", got)
	}

	// Replays run where the destination is delivered, and name it.
	if _, err := tn.StartReplay(model.Replay{EventID: late.ID(), RequestedBy: "test"}, "", ""); !errors.Is(err, ErrElsewhere) {
		t.Fatalf("a replay naming no destination on a member: %v", err)
	}
	if _, err := tn.StartReplay(model.Replay{EventID: late.ID(), Destination: "app", RequestedBy: "test"}, "", ""); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "late")
	tn.Disown(part)
	if _, err := tn.StartReplay(model.Replay{EventID: late.ID(), Destination: "app", RequestedBy: "test"}, "", ""); !errors.Is(err, ErrElsewhere) {
		t.Fatalf("a replay of a destination delivered elsewhere: %v", err)
	}
}

// An event whose delivery record exists was taken into the queue by an
// earlier owner whose outbox acknowledgement did not land: a takeover
// acknowledges it instead of queueing it twice.
func TestMemberTakeoverAcknowledgesWhatWasQueued(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	tn := startNodeWith(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{}), func(c *Config) { c.Member = true })
	m := &testMember{localWriter: localWriter{tn.db}, lease: map[uint16]bool{}}
	tn.UseMember(m)
	part := tn.db.DestPartition("app")
	m.setLease(part, true)
	ev := putReplicated(t, tn.db, 1<<12, "queued", "app")
	done := make(chan error, 1)
	m.Write("app", []destsm.Op{destsm.PutQueue{QSeq: 1, Part: ev.Partition, Seq: ev.Seq},
		destsm.PutDelivery{Seq: ev.Seq, Rec: model.Delivery{Destination: "app", EventID: ev.ID(), Status: wal.StatusPending, QSeq: 1}}}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tn.Own(part)
	s.wait(t, "queued")
	waitStatus(t, tn, ev.ID(), wal.StatusDelivered)
	left := 0
	tn.db.ScanOutbox(ev.Partition, func(wal.OutboxEntry) { left++ })
	if left != 0 {
		t.Fatalf("%d outbox entries left after the takeover", left)
	}
	time.Sleep(100 * time.Millisecond)
	if got := s.received(); len(got) != 1 {
		t.Fatalf("delivered %v, want once", got)
	}
}

// Ordered follows the destination's effective ordering: "" is the default,
// ordered, as the destination's machine runs it, so a cluster member's
// ingest gives its events inbox entries.
func TestMemberOrderedFollowsDefault(t *testing.T) {
	for _, tc := range []struct {
		ordering model.Ordering
		want     bool
	}{{"", true}, {model.OrderingOrdered, true}, {model.OrderingParallel, false}} {
		tn := startNode(t, t.TempDir(), nil, baseChange("http://127.0.0.1:1", model.Destination{Ordering: tc.ordering}))
		if got := tn.Ordered("app"); got != tc.want {
			t.Errorf("ordering %q: Ordered = %v, want %v", tc.ordering, got, tc.want)
		}
		if tn.Ordered("unknown") {
			t.Errorf("ordering %q: Ordered of an unknown destination", tc.ordering)
		}
	}
}
