package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/webhookops/webhookops/wal"
)

func openDB(t *testing.T, dir string) *wal.DB {
	t.Helper()
	db, err := wal.Open(dir, wal.Config{Partitions: 4, CacheSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

type recorder struct {
	mu        sync.Mutex
	events    []string
	inboxed   [][]string // per event: the destinations its proposer inboxes
	inbox     []string   // "dest seq", in the order applied
	takeovers []Fence
}

func (r *recorder) TakeoverApplied(_ uint16, f Fence) {
	r.mu.Lock()
	r.takeovers = append(r.takeovers, f)
	r.mu.Unlock()
}

func (r *recorder) EventApplied(ev *wal.Event, inboxed []string) {
	r.mu.Lock()
	r.events = append(r.events, ev.IdemKey)
	r.inboxed = append(r.inboxed, inboxed)
	r.mu.Unlock()
}

func (r *recorder) InboxApplied(dest string, part uint16, seq uint64) {
	r.mu.Lock()
	r.inbox = append(r.inbox, fmt.Sprintf("%s %d/%d", dest, part, seq))
	r.mu.Unlock()
}

func ingestCmd(key string, at time.Time, window time.Duration, dests ...string) []byte {
	return encodeIngest(window, wal.EncodeEvent(&wal.Event{
		Source: "src", IdemKey: key, EventType: "push", ReceivedAt: at, Body: []byte(key), Destinations: dests,
	}))
}

func queueOps(t *testing.T, db *wal.DB, part uint16, dest string, qseq uint64) []byte {
	t.Helper()
	if db.DestPartition(dest) != part {
		t.Fatalf("test destination %q is not in partition %d", dest, part)
	}
	b := db.NewBatch()
	defer b.Discard()
	b.PutQueue(dest, qseq, part, 1)
	ops, err := b.EncodeOps(part)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// destIn finds a destination slug whose queue lives in part.
func destIn(db *wal.DB, part uint16) string {
	for i := 0; ; i++ {
		d := "dest-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if db.DestPartition(d) == part {
			return d
		}
	}
}

type step struct {
	cmd  []byte
	want uint64
	ev   int // for ingest results: the n-th new event (1-based) whose sequence Data holds
}

// A script of entries through one partition's state machine: dedupe
// decided at apply time (also between entries of one Update call), term
// fencing of owner writes, bad entries refused as results.
func TestPartitionUpdate(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	t0 := time.Unix(1700000000, 0).UTC()
	const win = time.Hour
	part := uint16(1)
	dest := destIn(db, part)
	// Every ingest here uses keys whose partition we ignore: the state
	// machine stores into the partition it replicates.
	script := [][]step{
		{ // one Update call
			{ingestCmd("a", t0, win, "d1"), ResultAccepted, 1},
			{ingestCmd("a", t0.Add(time.Second), win, "d1"), ResultDuplicate, 1},
			{ingestCmd("b", t0, win), ResultAccepted, 2},
		},
		{
			{ingestCmd("a", t0.Add(time.Minute), win, "d1"), ResultDuplicate, 1},
			{ingestCmd("a", t0.Add(2*time.Hour), win, "d1"), ResultAccepted, 3}, // outside the window
			{[]byte{kindIngest}, ResultBad, 0},
			{[]byte{99, 1, 2}, ResultBad, 0},
			{nil, ResultBad, 0},
		},
		{
			{encodeWrite(1, 1, queueOps(t, db, part, dest, 1)), ResultFenced, 0}, // nobody owns it yet
			{encodeTakeover(2, 1), ResultAccepted, 0},
			{encodeWrite(2, 1, queueOps(t, db, part, dest, 1)), ResultAccepted, 0},
			{encodeTakeover(3, 2), ResultAccepted, 0},
			{encodeWrite(2, 1, queueOps(t, db, part, dest, 2)), ResultFenced, 0}, // deposed owner
			{encodeTakeover(2, 1), ResultFenced, 0},
			{encodeWrite(3, 2, queueOps(t, db, part, dest, 3)), ResultAccepted, 0},
			{encodeWrite(3, 2, queueOps(t, db, part+1, destIn(db, part+1), 1)), ResultBad, 0}, // other partition
		},
	}
	rec := &recorder{}
	p := newPartitionSM(db, part, rec)
	if applied, err := p.Open(nil); err != nil || applied != 0 {
		t.Fatalf("Open = %d, %v", applied, err)
	}
	index := uint64(0)
	var seqs []uint64 // of new events, in order
	for _, call := range script {
		ents := make([]sm.Entry, len(call))
		for i, s := range call {
			index++
			ents[i] = sm.Entry{Index: index, Cmd: s.cmd}
		}
		out, err := p.Update(ents)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range call {
			r := out[i].Result
			if r.Value != s.want {
				t.Fatalf("entry %d: result %d, want %d", out[i].Index, r.Value, s.want)
			}
			if s.ev == 0 {
				continue
			}
			if len(r.Data) != 8 {
				t.Fatalf("entry %d: no sequence in %x", out[i].Index, r.Data)
			}
			seq := binary.BigEndian.Uint64(r.Data)
			if r.Value == ResultAccepted {
				if len(seqs) != s.ev-1 || (len(seqs) > 0 && seq <= seqs[len(seqs)-1]) || seq&0xfff != uint64(part) {
					t.Fatalf("entry %d: new sequence %x after %x", out[i].Index, seq, seqs)
				}
				seqs = append(seqs, seq)
			} else if seq != seqs[s.ev-1] {
				t.Fatalf("entry %d: duplicate of %x, want %x", out[i].Index, seq, seqs[s.ev-1])
			}
		}
	}
	q, err := db.QueuePage(dest, 0, 10)
	if err != nil || len(q) != 2 || q[0].QSeq != 1 || q[1].QSeq != 3 {
		t.Fatalf("queue after fenced writes = %+v, %v (want qseq 1 and 3 only)", q, err)
	}
	var outbox []wal.OutboxEntry
	db.ScanOutbox(part, func(o wal.OutboxEntry) { outbox = append(outbox, o) })
	if len(outbox) != 2 || outbox[0].EventSeq != seqs[0] || outbox[1].EventSeq != seqs[2] {
		t.Fatalf("outbox = %+v", outbox)
	}
	if got := rec.events; len(got) != 3 {
		t.Fatalf("observer saw events %v, want 3", got)
	}
	// One notice per Update call, naming the owner at its end.
	if got := rec.takeovers; len(got) != 1 || got[0] != (Fence{3, 2}) {
		t.Fatalf("observer saw takeovers %v", got)
	}

	// A restart resumes from the store: applied index, fence, sequence.
	p2 := newPartitionSM(db, part, nil)
	if applied, err := p2.Open(nil); err != nil || applied != index {
		t.Fatalf("reopen: applied %d, %v; want %d", applied, err, index)
	}
	out, err := p2.Update([]sm.Entry{
		{Index: index + 1, Cmd: encodeWrite(2, 1, queueOps(t, db, part, dest, 9))},
		{Index: index + 2, Cmd: ingestCmd("c", t0, win)},
	})
	if err != nil || out[0].Result.Value != ResultFenced || binary.BigEndian.Uint64(out[1].Result.Data) <= seqs[2] {
		t.Fatalf("after reopen: %+v, %v", out, err)
	}
}

// A replica that fell behind catches up from a snapshot: data, fence and
// sequence all come with it.
func TestPartitionSnapshotCatchUp(t *testing.T) {
	leaderDB := openDB(t, t.TempDir())
	defer leaderDB.Close()
	lagDB := openDB(t, t.TempDir())
	defer lagDB.Close()
	t0 := time.Unix(1700000000, 0).UTC()
	leader := newPartitionSM(leaderDB, 2, nil)
	leader.Open(nil)
	if _, err := leader.Update([]sm.Entry{
		{Index: 1, Cmd: encodeTakeover(4, 3)},
		{Index: 2, Cmd: ingestCmd("x", t0, time.Hour, "d1")},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, err := leader.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := leader.SaveSnapshot(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	lag := newPartitionSM(lagDB, 2, nil)
	lag.Open(nil)
	if err := lag.RecoverFromSnapshot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if lag.fence != (Fence{4, 3}) || lag.lastSeq != leader.lastSeq {
		t.Fatalf("after recovery: fence %+v, last seq %d", lag.fence, lag.lastSeq)
	}
	out, err := lag.Update([]sm.Entry{{Index: 3, Cmd: ingestCmd("x", t0.Add(time.Second), time.Hour)}})
	if err != nil || out[0].Result.Value != ResultDuplicate {
		t.Fatalf("dedupe after recovery: %+v, %v", out, err)
	}
	if f, err := lag.Lookup(nil); err != nil || f != (Fence{4, 3}) {
		t.Fatalf("Lookup = %v, %v", f, err)
	}
}

// Inbox entries: added in log order with their raft index, at most once
// per event and destination (not again while waiting, nor once the owner
// took the event into the queue), refused whole when one names a
// destination of another partition; ingests name their inboxed
// destinations to the observer.
func TestPartitionInbox(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	part := uint16(2)
	d1, d2 := destIn(db, part), destIn(db, part)+"x"
	for db.DestPartition(d2) != part {
		d2 += "x"
	}
	other := destIn(db, part+1)
	rec := &recorder{}
	p := newPartitionSM(db, part, rec)
	p.Open(nil)
	t0 := time.Unix(1700000000, 0).UTC()
	ev := wal.EncodeEvent(&wal.Event{Source: "src", IdemKey: "o", ReceivedAt: t0, Body: []byte("{}"), Destinations: []string{"p", d1, d2}})
	ents := []sm.Entry{
		{Index: 1, Cmd: encodeIngestTo(time.Hour, []int{1, 2, 7}, ev)},
		{Index: 2, Cmd: encodeInbox([]inboxRef{{d1, 5, 100}, {d2, 5, 100}})},
		{Index: 3, Cmd: encodeInbox([]inboxRef{{d1, 6, 90}, {d1, 5, 100}})}, // 100 again: waiting already
		{Index: 4, Cmd: encodeInbox([]inboxRef{{d1, 6, 91}, {other, 6, 91}})},
		{Index: 5, Cmd: []byte{kindInbox, 1, 0}},
	}
	out, err := p.Update(ents)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{ResultAccepted, ResultAccepted, ResultAccepted, ResultBad, ResultBad} {
		if out[i].Result.Value != want {
			t.Fatalf("entry %d: result %d, want %d", i+1, out[i].Result.Value, want)
		}
	}
	if len(rec.inboxed) != 1 || !slices.Equal(rec.inboxed[0], []string{d1, d2}) {
		t.Fatalf("observer saw inboxed destinations %v, want [%s %s]", rec.inboxed, d1, d2)
	}
	if want := []string{d1 + " 5/100", d2 + " 5/100", d1 + " 6/90"}; !slices.Equal(rec.inbox, want) {
		t.Fatalf("observer saw inbox %v, want %v", rec.inbox, want)
	}
	got, err := db.ScanInbox(d1)
	if err != nil || len(got) != 2 || got[0] != (wal.InboxEntry{Index: 2, EventPart: 5, EventSeq: 100}) || got[1] != (wal.InboxEntry{Index: 3, EventPart: 6, EventSeq: 90}) {
		t.Fatalf("inbox of %s = %+v, %v (want 100 at index 2, then 90 at index 3)", d1, got, err)
	}

	// The owner takes 100 into the queue (its delivery record marks it)
	// and deletes the inbox entry: a retry's inbox entry adds nothing.
	b := db.NewBatch()
	b.PutQueue(d1, 1, 5, 100)
	b.PutDelivery(100, &wal.Delivery{Destination: d1, EventID: wal.EventID(5, 100), Status: wal.StatusPending, QSeq: 1})
	b.DeleteInbox(d1, 100)
	ops, err := b.EncodeOps(part)
	b.Discard()
	if err != nil {
		t.Fatal(err)
	}
	out, err = p.Update([]sm.Entry{
		{Index: 6, Cmd: encodeTakeover(1, 1)},
		{Index: 7, Cmd: encodeWrite(1, 1, ops)},
		{Index: 8, Cmd: encodeInbox([]inboxRef{{d1, 5, 100}})},
	})
	if err != nil || out[1].Result.Value != ResultAccepted || out[2].Result.Value != ResultAccepted {
		t.Fatalf("take and retry: %+v, %v", out, err)
	}
	if got, _ := db.ScanInbox(d1); len(got) != 1 || got[0].EventSeq != 90 {
		t.Fatalf("inbox after the take and a retry = %+v", got)
	}
	if len(rec.inbox) != 3 {
		t.Fatalf("a retry reached the owner: %v", rec.inbox)
	}
}

func TestNextSeq(t *testing.T) {
	t0 := time.UnixMicro(1_700_000_000_000_000)
	base := uint64(1_700_000_000_000_000) << 12
	tests := []struct {
		name string
		last uint64
		at   time.Time
		part uint16
		want uint64
	}{
		{"first event", 0, t0, 3, base | 3},
		{"later time", base | 3, t0.Add(time.Microsecond), 3, base + 1<<12 | 3},
		{"same microsecond", base | 3, t0, 3, base + 1<<12 | 3},
		{"clock behind the last event", base + 5<<12 | 3, t0, 3, base + 6<<12 | 3},
		{"zero time", 0, time.Time{}, 7, 7},
		{"before 1970", 0, time.Unix(-5, 0), 7, 7},
		{"partition in the low 12 bits", 0, t0, 4095, base | 4095},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextSeq(tt.last, tt.at, tt.part); got != tt.want {
				t.Fatalf("nextSeq = %x, want %x", got, tt.want)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeTakeover(3, 1))
	f.Add(encodeWrite(3, 1, []byte{1, 's', 1, 'p'}))
	f.Add(ingestCmd("k", time.Unix(1, 0), time.Hour))
	f.Add(encodeIngestTo(time.Hour, []int{0, 2}, []byte("event")))
	f.Add(encodeInbox([]inboxRef{{"d1", 3, 99}, {"d2", 0, 1}}))
	f.Add(encodeAck([]byte{1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		switch e.kind {
		case kindIngest, kindTakeover, kindWrite, kindAckOut:
		case kindIngestTo:
			if len(e.inboxed) == 0 || len(e.inboxed) > maxInboxRefs {
				t.Fatalf("ingest with %d inboxed destinations", len(e.inboxed))
			}
		case kindInbox:
			if len(e.inbox) == 0 || len(e.inbox) > maxInboxRefs {
				t.Fatalf("inbox of %d entries", len(e.inbox))
			}
			for _, r := range e.inbox {
				if r.dest == "" {
					t.Fatal("inbox entry without a destination")
				}
			}
			if again, err := decodeEntry(encodeInbox(e.inbox)); err != nil || len(again.inbox) != len(e.inbox) {
				t.Fatalf("re-encoded inbox: %+v, %v", again, err)
			}
		default:
			t.Fatalf("decoded unknown kind %d", e.kind)
		}
	})
}
