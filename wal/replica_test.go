package wal

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func testEvent(db *DB, key string, seq uint64) *Event {
	return &Event{
		Partition: db.EventPartition("src", key), Seq: seq, Source: "src", IdemKey: key, EventType: "push",
		ReceivedAt: time.Unix(1700000000, 0).UTC(), Headers: [][2]string{{"A", "b"}}, Body: []byte("{}"),
		Destinations: []string{"d1"},
	}
}

// An owner's writes, encoded on one node, land on another node's replica
// of the same partition exactly, with the applied index in the same batch.
func TestEncodeOpsAppliesOnAReplica(t *testing.T) {
	leader := openTest(t, t.TempDir())
	defer leader.Close()
	follower := openTest(t, t.TempDir())
	defer follower.Close()

	dest := "d1"
	part := leader.DestPartition(dest)
	b := leader.NewBatch()
	b.PutQueue(dest, 1, 3, 42)
	b.PutDelivery(42, &Delivery{Destination: dest, EventID: EventID(3, 42), Status: StatusDead})
	b.DeleteQueue(dest, 0, 41)
	enc, err := b.EncodeOps(part)
	if err != nil {
		t.Fatal(err)
	}
	b.Discard()

	rb := follower.NewReplicaBatch(part)
	if err := rb.ApplyOps(enc); err != nil {
		t.Fatal(err)
	}
	rb.SetFence(7, 2)
	if err := rb.CommitApplied(99); err != nil {
		t.Fatal(err)
	}
	q, err := follower.QueuePage(dest, 0, 10)
	if err != nil || len(q) != 1 || q[0].EventSeq != 42 || q[0].EventPart != 3 {
		t.Fatalf("queue on the replica = %+v, %v", q, err)
	}
	d, err := follower.GetDelivery(dest, 42)
	if err != nil || d.Status != StatusDead {
		t.Fatalf("delivery on the replica = %+v, %v", d, err)
	}
	if n, err := follower.CountDead(dest); err != nil || n != 1 {
		t.Fatalf("dead letters on the replica = %d, %v", n, err)
	}
	st, err := follower.ReadReplicaState(part)
	if err != nil || st.Applied != 99 || st.FenceTerm != 7 || st.FenceNode != 2 {
		t.Fatalf("replica state = %+v, %v", st, err)
	}
}

// A proposal may only touch its own partition's data: never config, the
// audit log, another partition or the replication state (which would let
// an owner forge the fence).
func TestEncodeOpsRefusesKeysOutsideThePartition(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	part := db.DestPartition("d1")
	other := (part + 1) % uint16(db.Partitions())
	cases := map[string]func(b *Batch){
		"audit":             func(b *Batch) { b.Audit(AuditEntry{Action: "x"}) },
		"config":            func(b *Batch) { b.DeleteConfig(KindSource, "s") },
		"other partition":   func(b *Batch) { b.PutOutbox(other, 1, "d1") },
		"replication state": func(b *Batch) { b.b.Set(replicaKey(part, replicaFence), make([]byte, 16), nil) },
	}
	for name, write := range cases {
		t.Run(name, func(t *testing.T) {
			b := db.NewBatch()
			defer b.Discard()
			b.PutQueue("d1", 1, 0, 1)
			write(b)
			if _, err := b.EncodeOps(part); !errors.Is(err, ErrOutsidePartition) {
				t.Fatalf("EncodeOps = %v, want ErrOutsidePartition", err)
			}
		})
	}
}

// Hand-made encodings that break the rules change nothing on apply.
func TestApplyOpsRejectsBadEncodingsWhole(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	good := db.NewBatch()
	good.PutOutbox(1, 5, "d1")
	enc, err := good.EncodeOps(1)
	good.Discard()
	if err != nil {
		t.Fatal(err)
	}
	fence := append([]byte{opsFormat, opSet}, appendString(nil, string(replicaKey(1, replicaFence)))...)
	fence = appendString(fence, "0123456789abcdef")
	cases := map[string][]byte{
		"empty":                 nil,
		"unknown format":        append([]byte{9}, enc[1:]...),
		"truncated":             enc[:len(enc)-2],
		"unknown op":            append(append([]byte{}, enc...), 'x'),
		"good then fence write": append(append([]byte{}, enc...), fence[1:]...),
		"other partition":       enc, // applied to partition 2 below
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			part := uint16(1)
			if name == "other partition" {
				part = 2
			}
			rb := db.NewReplicaBatch(part)
			defer rb.Discard()
			if err := rb.ApplyOps(in); err == nil {
				t.Fatal("ApplyOps accepted it")
			}
			if rb.Count() != 0 {
				t.Fatalf("a rejected encoding left %d writes in the batch", rb.Count())
			}
		})
	}
}

func FuzzApplyOps(f *testing.F) {
	db, err := Open(f.TempDir(), Config{Partitions: 4, CacheSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	b.PutOutbox(1, 5, "d1")
	b.DeleteOutbox(1, 4, "d1")
	enc, _ := b.EncodeOps(1)
	b.Discard()
	f.Add(enc)
	f.Add([]byte{opsFormat, opSet, 200})
	f.Fuzz(func(t *testing.T, in []byte) {
		rb := db.NewReplicaBatch(1)
		defer rb.Discard()
		if err := rb.ApplyOps(in); err != nil && rb.Count() != 0 {
			t.Fatalf("error %v left %d writes", err, rb.Count())
		}
	})
}

// A snapshot of one partition replaces that partition on another node and
// leaves every other key there alone; a cut stream changes nothing.
func TestPartitionSnapshotRestore(t *testing.T) {
	src := openTest(t, t.TempDir())
	defer src.Close()
	dst := openTest(t, t.TempDir())
	defer dst.Close()

	e := testEvent(src, "k1", 10)
	part := e.Partition
	rb := src.NewReplicaBatch(part)
	rb.PutEvent(e)
	rb.PutDedupe(part, e.Source, e.IdemKey, e.Seq, e.ReceivedAt)
	rb.SetFence(3, 1)
	if err := rb.CommitApplied(12); err != nil {
		t.Fatal(err)
	}

	// dst has a stale event in the same partition and one elsewhere.
	stale := testEvent(dst, "k1", 5)
	elsewhere := &Event{Partition: (part + 1) % 8, Seq: 6, Source: "src", ReceivedAt: time.Unix(1, 0).UTC()}
	b := dst.NewBatch()
	b.PutEvent(stale)
	b.PutEvent(elsewhere)
	if err := dst.CommitWait(b); err != nil {
		t.Fatal(err)
	}

	snap, err := src.PartitionSnapshot(part)
	if err != nil {
		t.Fatal(err)
	}
	// A write after the snapshot was taken is not in it.
	late := src.NewReplicaBatch(part)
	late.PutEvent(testEvent(src, "k2", 11))
	if err := late.CommitApplied(13); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.WriteTo(&buf, nil); err != nil {
		t.Fatal(err)
	}
	snap.Close()

	for cut := 1; cut < buf.Len(); cut += max(1, buf.Len()/7) {
		if err := dst.RestorePartition(part, bytes.NewReader(buf.Bytes()[:cut]), nil); err == nil {
			t.Fatalf("restore of a stream cut at %d of %d succeeded", cut, buf.Len())
		}
	}
	if _, err := dst.GetEvent(part, 5); err != nil {
		t.Fatalf("a failed restore changed the partition: %v", err)
	}
	if err := dst.RestorePartition((part+1)%8, bytes.NewReader(buf.Bytes()), nil); !errors.Is(err, ErrOutsidePartition) {
		t.Fatalf("restore into another partition = %v", err)
	}

	if err := dst.RestorePartition(part, bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.GetEvent(part, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stale event survived the restore: %v", err)
	}
	if got, err := dst.GetEvent(part, 10); err != nil || got.IdemKey != "k1" {
		t.Fatalf("restored event = %+v, %v", got, err)
	}
	if _, err := dst.GetEvent(part, 11); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a write after the snapshot reached it: %v", err)
	}
	if _, err := dst.GetEvent(elsewhere.Partition, 6); err != nil {
		t.Fatalf("restore touched another partition: %v", err)
	}
	st, err := dst.ReadReplicaState(part)
	if err != nil || st != (ReplicaState{Applied: 12, FenceTerm: 3, FenceNode: 1, LastSeq: 10}) {
		t.Fatalf("restored replica state = %+v, %v", st, err)
	}
	if err := dst.SyncReplicas(); err != nil {
		t.Fatal(err)
	}
}
