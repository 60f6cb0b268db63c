package wal

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// destInPart finds a destination slug whose keys live in part.
func destInPart(db *DB, part uint16, prefix string) string {
	for i := 0; ; i++ {
		d := prefix + strconv.Itoa(i)
		if db.DestPartition(d) == part {
			return d
		}
	}
}

// The inbox comes back in raft order whatever the event sequences; an
// event is held while waiting and once it has a delivery record; an inbox
// entry for a destination of another partition is refused.
func TestInbox(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	part := uint16(3)
	dest := destInPart(db, part, "d")
	rb := db.NewReplicaBatch(part)
	for _, e := range []InboxEntry{{Index: 12, EventPart: 1, EventSeq: 500}, {Index: 10, EventPart: 2, EventSeq: 900}, {Index: 11, EventPart: 1, EventSeq: 100}} {
		if err := rb.PutInbox(dest, e.EventPart, e.EventSeq, e.Index); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.PutInbox(destInPart(db, part+1, "o"), 1, 1, 13); err == nil {
		t.Fatal("an inbox entry for another partition's destination was taken")
	}
	if err := rb.CommitApplied(13); err != nil {
		t.Fatal(err)
	}
	got, err := db.ScanInbox(dest)
	want := []InboxEntry{{10, 2, 900}, {11, 1, 100}, {12, 1, 500}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ScanInbox = %+v, %v; want %+v", got, err, want)
	}
	for seq, want := range map[uint64]bool{900: true, 100: true, 7: false} {
		if held, err := db.InboxHolds(dest, seq); err != nil || held != want {
			t.Fatalf("InboxHolds(%d) = %v, %v; want %v", seq, held, err, want)
		}
	}
	// The owner takes 900: queue, pending record, inbox entry gone. Still
	// held (by its record); its queue and what is left put the destination
	// among those with work.
	b := db.NewBatch()
	b.PutQueue(dest, 1, 2, 900)
	b.PutDelivery(900, &Delivery{Destination: dest, EventID: EventID(2, 900), Status: StatusPending, QSeq: 1})
	b.DeleteInbox(dest, 900)
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	if held, _ := db.InboxHolds(dest, 900); !held {
		t.Fatal("an event taken into the queue is no longer held")
	}
	if got, _ := db.ScanInbox(dest); len(got) != 2 || got[0].EventSeq != 100 {
		t.Fatalf("inbox after the take = %+v", got)
	}
	other := destInPart(db, part, "q")
	b = db.NewBatch()
	b.PutEvent(&Event{Partition: 5, Seq: 77, Source: "s", IdemKey: "k", Destinations: []string{other}})
	b.PutOutbox(5, 77, other)
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	dests, err := db.DestsWithWork(part)
	if err != nil || !slices.Equal(dests, []string{dest, other}) {
		t.Fatalf("DestsWithWork = %v, %v; want [%s %s]", dests, err, dest, other)
	}
	if dests, _ := db.DestsWithWork(part + 1); len(dests) != 0 {
		t.Fatalf("DestsWithWork of an idle partition = %v", dests)
	}
}

// A store becomes a cluster member's only empty, and only for one node.
func TestMarkClusterMember(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	if id, err := db.ClusterMember(); err != nil || id != 0 {
		t.Fatalf("a new store's member = %d, %v", id, err)
	}
	if err := db.MarkClusterMember(2); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkClusterMember(2); err != nil {
		t.Fatalf("marking again for the same node: %v", err)
	}
	if err := db.MarkClusterMember(3); err == nil {
		t.Fatal("a store of member 2 was marked for member 3")
	}
	if id, _ := db.ClusterMember(); id != 2 {
		t.Fatalf("member = %d, want 2", id)
	}

	single := openTest(t, t.TempDir())
	defer single.Close()
	b := single.NewBatch()
	b.PutEvent(&Event{Partition: 1, Seq: 1, Source: "s", IdemKey: "k"})
	if err := single.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	if err := single.MarkClusterMember(1); err == nil || !strings.Contains(err.Error(), "single node") {
		t.Fatalf("a single node's store became a member's: %v", err)
	}
}
