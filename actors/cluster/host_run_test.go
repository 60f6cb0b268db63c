package cluster

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// One member, in process (dragonboat keeps process-wide state, so tests
// with several members run as child processes: cmd/webhookops). It takes
// over every partition, ingests with dedupe, lets its owner write, and
// refuses a write stamped with an older term.
func TestSingleMemberOwnsAndFences(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	addr := freePort(t)
	c, err := Start(Config{NodeID: 1, RaftAddr: addr, Members: map[uint64]string{1: addr}, Dir: t.TempDir(), DB: db,
		RTT: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(c.Owned()) < db.Partitions() {
		if time.Now().After(deadline) {
			t.Fatalf("owns %v after 20 s", c.Owned())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()

	src := &actors.SourceView{Source: model.Source{Slug: "s"}}
	first, err := c.Ingest(ctx, actors.IngestRequest{Source: "s", IdemKey: "k1", Body: []byte("{}")}, src)
	if err != nil || first.Duplicate {
		t.Fatalf("Ingest = %+v, %v", first, err)
	}
	again, err := c.Ingest(ctx, actors.IngestRequest{Source: "s", IdemKey: "k1", Body: []byte("{}")}, src)
	if err != nil || !again.Duplicate || again.EventID != first.EventID {
		t.Fatalf("redelivery = %+v, %v; want a duplicate of %s", again, err, first.EventID)
	}
	if ev, err := db.GetEventByID(first.EventID); err != nil || ev.IdemKey != "k1" {
		t.Fatalf("stored event = %+v, %v", ev, err)
	}

	dest := destIn(db, 2)
	b := db.NewBatch()
	b.PutQueue(dest, 1, 0, 7)
	if err := c.Write(ctx, 2, b); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	if q, err := db.QueuePage(dest, 0, 10); err != nil || len(q) != 1 {
		t.Fatalf("queue after the owner's write = %+v, %v", q, err)
	}

	// A deposed owner's write: the same node in an older term.
	f := c.Owned()[2]
	b = db.NewBatch()
	b.PutQueue(dest, 2, 0, 8)
	ops, _ := b.EncodeOps(2)
	b.Discard()
	res, err := c.propose(ctx, 2, encodeWrite(f.Term-1, f.Node, ops))
	if err != nil || res.Value != ResultFenced {
		t.Fatalf("stale write = %+v, %v; want fenced", res, err)
	}
	if q, _ := db.QueuePage(dest, 0, 10); len(q) != 1 {
		t.Fatalf("a fenced write reached the queue: %+v", q)
	}

	// Outbox acknowledgements delete outbox entries and nothing else.
	ev, _ := db.GetEventByID(first.EventID)
	b = db.NewBatch()
	b.PutOutbox(ev.Partition, ev.Seq, "d")
	if err := c.Write(ctx, ev.Partition, b); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	b = db.NewBatch()
	b.DeleteOutbox(ev.Partition, ev.Seq, "d")
	if err := c.AckOutbox(ctx, ev.Partition, b); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	n := 0
	db.ScanOutbox(ev.Partition, func(wal.OutboxEntry) { n++ })
	if n != 0 {
		t.Fatalf("%d outbox entries after the acknowledgement", n)
	}
	b = db.NewBatch()
	b.PutOutbox(ev.Partition, ev.Seq+1, "d")
	if err := c.AckOutbox(ctx, ev.Partition, b); err == nil {
		t.Fatal("an acknowledgement that writes was accepted")
	}
	b.Discard()

	// Not an owner: no write.
	c.mu.Lock()
	delete(c.owned, 3)
	c.mu.Unlock()
	b = db.NewBatch()
	defer b.Discard()
	if err := c.Write(ctx, 3, b); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("write without ownership = %v", err)
	}

	// The destination writer: queue and delivery record fenced into the
	// destination's partition, then the outbox acknowledged in the event's,
	// in the order given per destination.
	wdest := destIn(db, 1)
	ev2, err := c.Ingest(ctx, actors.IngestRequest{Source: "s", IdemKey: "k2", Body: []byte("{}")}, &actors.SourceView{
		Source: model.Source{Slug: "s", Routes: []model.Route{{Destination: wdest}}}})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := db.GetEventByID(ev2.EventID)
	if err != nil || len(e2.Destinations) != 1 {
		t.Fatalf("routed event = %+v, %v", e2, err)
	}
	var audited []string
	w := NewWriter(c, func(a wal.AuditEntry) { audited = append(audited, a.Action) })
	errs := make(chan error, 2)
	w.Write(wdest, []destsm.Op{destsm.PutQueue{QSeq: 1, Part: e2.Partition, Seq: e2.Seq}, destsm.DeleteOutbox{Part: e2.Partition, Seq: e2.Seq}}, func(err error) { errs <- err })
	w.Write(wdest, []destsm.Op{destsm.DeleteQueue{QSeq: 1, Seq: e2.Seq}, destsm.PutDelivery{Seq: e2.Seq, Rec: model.Delivery{Destination: wdest, EventID: e2.ID(), Status: wal.StatusDelivered}},
		destsm.Audit{Action: "delivery.succeeded", EventID: e2.ID()}}, func(err error) { errs <- err })
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	w.Wait()
	if q, _ := db.QueuePage(wdest, 0, 10); len(q) != 0 {
		t.Fatalf("queue after put and delete in order: %+v", q)
	}
	if d, err := db.GetDelivery(wdest, e2.Seq); err != nil || d.Status != wal.StatusDelivered {
		t.Fatalf("delivery record = %+v, %v", d, err)
	}
	left := 0
	db.ScanOutbox(e2.Partition, func(o wal.OutboxEntry) {
		if o.Dest == wdest {
			left++
		}
	})
	if left != 0 || len(audited) != 1 {
		t.Fatalf("outbox entries left %d, audited %v", left, audited)
	}
	c.mu.Lock()
	delete(c.owned, 1)
	c.mu.Unlock()
	w.Write(wdest, []destsm.Op{destsm.DeleteQueue{QSeq: 2}}, func(err error) { errs <- err })
	if err := <-errs; !errors.Is(err, ErrNotOwner) {
		t.Fatalf("write after losing ownership = %v", err)
	}
	w.Wait()

	st, err := c.Status(ctx)
	if err != nil || len(st.Partitions) != db.Partitions() || len(st.Nodes) != 1 || !st.Nodes[0].Reachable || st.Nodes[0].Leads != db.Partitions() {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	// Membership changes refused as asked change nothing; removing a node
	// that is not a member is done already.
	for name, err := range map[string]error{
		"remove itself":               c.RemoveNode(ctx, 1),
		"add a member at a new place": c.AddNode(ctx, 1, "127.0.0.1:1"),
		"add node 0":                  c.AddNode(ctx, 0, "127.0.0.1:1"),
		"add a bad address":           c.AddNode(ctx, 5, "nowhere"),
		"add off loopback, no TLS":    c.AddNode(ctx, 5, "10.1.2.3:7101"),
	} {
		if !errors.Is(err, ErrMembership) {
			t.Errorf("%s: %v, want ErrMembership", name, err)
		}
	}
	if err := c.RemoveNode(ctx, 9); err != nil {
		t.Fatalf("removing a node that is not a member: %v", err)
	}
	if st2, _ := c.Status(ctx); len(st2.Nodes) != 1 {
		t.Fatalf("members after refused changes: %+v", st2.Nodes)
	}
}
