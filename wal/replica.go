package wal

// Replicated partitions.
//
// In a cluster a partition is a raft shard: its state machine applies
// committed entries to the partition's key range here. What it needs from
// the store is below, and nothing of Pebble leaks out:
//
//   - ReplicaBatch collects one Update call's writes to one partition and
//     records the last applied raft index in the same Pebble batch, so a
//     restart resumes from the store. It is committed without an fsync of
//     its own: the raft log is the durability, and an entry whose apply was
//     lost in a crash is applied again after restart (the applied index
//     moved with it).
//   - EncodeOps turns an ordinary Batch (built with PutQueue, PutDelivery,
//     DeleteOutbox...) into a stable byte form an owner can propose;
//     ReplicaBatch.ApplyOps applies it on every replica, refusing any key
//     outside the partition or inside its reserved replication state.
//   - The fence (highest takeover term and its owner) lives in the
//     partition's range too, so a snapshot carries it.
//   - PartitionSnapshot streams the whole key range (applied index and
//     fence included); RestorePartition replaces the range with one.
//
// Key layout added here (the 'z' sub-prefix is reserved to this file):
//
//	p <part:2> z a    applied raft index (8 bytes)
//	p <part:2> z f    fence: term (8) and owner node id (8)

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

const (
	subReplica = 'z'

	replicaApplied = 'a'
	replicaFence   = 'f'

	opsFormat      = 1
	snapshotFormat = 1

	opSet    = 's'
	opDelete = 'd'
)

// ErrOutsidePartition: encoded writes touch a key that is not in the
// partition they were proposed to (or touch its replication state).
var ErrOutsidePartition = errors.New("wal: write outside the partition")

func replicaKey(part uint16, which byte) []byte {
	return append(partKey(part, subReplica, 1), which)
}

func partPrefix(part uint16) []byte {
	b := make([]byte, 3)
	b[0] = prefixPartition
	binary.BigEndian.PutUint16(b[1:], part)
	return b
}

// ownerWritable reports whether an owner's encoded write may touch k in
// part: inside the partition, outside its replication state.
func ownerWritable(part uint16, k []byte) bool {
	return len(k) >= 4 && k[0] == prefixPartition && binary.BigEndian.Uint16(k[1:3]) == part && k[3] != subReplica
}

// EncodeOps encodes b's writes for a proposal to part. Every write must be
// a set or delete of a key in part (its replication state excluded);
// otherwise it answers ErrOutsidePartition and nothing. b is left as it was.
func (b *Batch) EncodeOps(part uint16) ([]byte, error) {
	if b.audits > 0 {
		return nil, fmt.Errorf("%w: the audit log in a proposal to partition %d", ErrOutsidePartition, part)
	}
	out := []byte{opsFormat}
	r := batchrepr.Read(b.b.Repr())
	for {
		kind, k, v, ok, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("wal.EncodeOps: %w", err)
		}
		if !ok {
			return out, nil
		}
		if !ownerWritable(part, k) {
			return nil, fmt.Errorf("%w: key %q in a proposal to partition %d", ErrOutsidePartition, k, part)
		}
		switch kind {
		case pebble.InternalKeyKindSet:
			out = append(out, opSet)
			out = appendString(out, string(k))
			out = appendString(out, string(v))
		case pebble.InternalKeyKindDelete:
			out = append(out, opDelete)
			out = appendString(out, string(k))
		default:
			return nil, fmt.Errorf("%w: write kind %v cannot be replicated", ErrOutsidePartition, kind)
		}
	}
}

// ReplicaBatch is one Update call's writes to one partition.
type ReplicaBatch struct {
	*Batch
	part uint16
}

// NewReplicaBatch starts a batch of replicated writes to part.
func (db *DB) NewReplicaBatch(part uint16) *ReplicaBatch {
	return &ReplicaBatch{Batch: db.NewBatch(), part: part}
}

// ApplyOps adds writes encoded by EncodeOps. It checks the whole encoding
// before adding anything, so a bad one changes nothing and answers an error
// wrapping ErrOutsidePartition or ErrCorrupt.
func (rb *ReplicaBatch) ApplyOps(enc []byte) error {
	if err := rb.walkOps(enc, nil); err != nil {
		return err
	}
	return rb.walkOps(enc, rb.b)
}

func (rb *ReplicaBatch) walkOps(enc []byte, into *pebble.Batch) error {
	if len(enc) == 0 || enc[0] != opsFormat {
		return fmt.Errorf("%w: replicated writes of unknown format", ErrCorrupt)
	}
	d := decoder{b: enc[1:]}
	for len(d.b) > 0 && d.err == nil {
		op := d.b[0]
		d.b = d.b[1:]
		k := d.bytes()
		if d.err == nil && !ownerWritable(rb.part, k) {
			return fmt.Errorf("%w: key %q in partition %d", ErrOutsidePartition, k, rb.part)
		}
		switch op {
		case opSet:
			v := d.bytes()
			if into != nil && d.err == nil {
				if k[3] == subDedupe && len(v) == 16 {
					rb.db.filter.add(rb.part, k, int64(binary.BigEndian.Uint64(v[8:])))
				} else if k[3] == subDedupe {
					rb.db.filter.add(rb.part, k, math.MaxInt64)
				}
				into.Set(k, v, nil)
			}
		case opDelete:
			if into != nil && d.err == nil {
				into.Delete(k, nil)
			}
		default:
			return fmt.Errorf("%w: replicated write op %q", ErrCorrupt, op)
		}
	}
	if d.err != nil {
		return fmt.Errorf("%w: truncated replicated writes", ErrCorrupt)
	}
	return nil
}

// ApplyOutboxAcks is ApplyOps for encodings that may only delete outbox
// entries of the partition (a destination owner's acknowledgements); any
// other write refuses the whole encoding.
func (rb *ReplicaBatch) ApplyOutboxAcks(enc []byte) error {
	if err := rb.walkOps(enc, nil); err != nil {
		return err
	}
	d := decoder{b: enc[1:]}
	for len(d.b) > 0 {
		op := d.b[0]
		d.b = d.b[1:]
		k := d.bytes()
		if op != opDelete || len(k) < 4 || k[3] != subOutbox {
			return fmt.Errorf("%w: only outbox deletions may be acknowledged, got %q on %q", ErrOutsidePartition, op, k)
		}
	}
	return rb.walkOps(enc, rb.b)
}

// SetFence records the partition's owner and the term it took over in.
func (rb *ReplicaBatch) SetFence(term, node uint64) {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], term)
	binary.BigEndian.PutUint64(v[8:], node)
	rb.b.Set(replicaKey(rb.part, replicaFence), v[:], nil)
}

// CommitApplied records index as the partition's last applied raft entry
// and commits the batch without waiting for an fsync (the raft log is
// durable already). The batch cannot be used afterwards.
func (rb *ReplicaBatch) CommitApplied(index uint64) error {
	return rb.commitApplied(replicaKey(rb.part, replicaApplied), index)
}

// ReplicaState is what a partition's state machine resumes from.
type ReplicaState struct {
	Applied   uint64 // last applied raft index, 0 for a new replica
	FenceTerm uint64 // highest takeover term applied, 0 for none
	FenceNode uint64 // the node that took over in FenceTerm
	LastSeq   uint64 // highest event sequence in the partition
}

// ReadReplicaState reads a partition's applied index, fence and last event
// sequence.
func (db *DB) ReadReplicaState(part uint16) (ReplicaState, error) {
	var s ReplicaState
	if int(part) >= db.partitions {
		return s, fmt.Errorf("wal.ReadReplicaState: partition %d of %d", part, db.partitions)
	}
	v, err := db.get(replicaKey(part, replicaApplied))
	switch {
	case err == nil && len(v) == 8:
		s.Applied = binary.BigEndian.Uint64(v)
	case err == nil:
		return s, fmt.Errorf("%w: applied index of partition %d", ErrCorrupt, part)
	case !errors.Is(err, ErrNotFound):
		return s, fmt.Errorf("wal.ReadReplicaState: %w", err)
	}
	v, err = db.get(replicaKey(part, replicaFence))
	switch {
	case err == nil && len(v) == 16:
		s.FenceTerm = binary.BigEndian.Uint64(v[:8])
		s.FenceNode = binary.BigEndian.Uint64(v[8:])
	case err == nil:
		return s, fmt.Errorf("%w: fence of partition %d", ErrCorrupt, part)
	case !errors.Is(err, ErrNotFound):
		return s, fmt.Errorf("wal.ReadReplicaState: %w", err)
	}
	lo := partKey(part, subEvent, 0)
	k, ok, err := db.lastKey(lo, prefixEnd(lo))
	if err != nil {
		return s, fmt.Errorf("wal.ReadReplicaState: %w", err)
	}
	if ok && len(k) == len(lo)+8 {
		s.LastSeq = binary.BigEndian.Uint64(k[len(lo):])
	}
	return s, nil
}

// EncodeEvent is an event's stored record, for a proposal. The partition
// and sequence are not part of it: the state machine assigns them.
func EncodeEvent(e *Event) []byte { return appendEvent(nil, e) }

// DecodeEvent is the inverse of EncodeEvent; it never panics on bad input.
func DecodeEvent(part uint16, seq uint64, b []byte) (*Event, error) {
	return decodeEvent(part, seq, b)
}

// PartSnapshot is a consistent view of one partition, taken at once and
// written out later.
type PartSnapshot struct {
	db   *DB
	snap *pebble.Snapshot
	part uint16
}

// PartitionSnapshot takes a point-in-time view of part. Close it.
func (db *DB) PartitionSnapshot(part uint16) (*PartSnapshot, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	return &PartSnapshot{db: db, snap: db.pdb.NewSnapshot(), part: part}, nil
}

// Close releases the view.
func (s *PartSnapshot) Close() error { return s.snap.Close() }

// WriteTo streams the partition: a format byte, then (key, value) pairs
// each uvarint-length-prefixed, then an empty key. stop, when closed,
// aborts the stream.
func (s *PartSnapshot) WriteTo(w io.Writer, stop <-chan struct{}) error {
	s.db.closeMu.RLock()
	defer s.db.closeMu.RUnlock()
	if s.db.closed.Load() {
		return ErrClosed
	}
	lo := partPrefix(s.part)
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("wal.PartSnapshot: %w", err)
	}
	defer it.Close()
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.WriteByte(snapshotFormat)
	var hdr []byte
	for i, ok := 0, it.First(); ok; i, ok = i+1, it.Next() {
		if i%1024 == 0 && stop != nil {
			select {
			case <-stop:
				return fmt.Errorf("wal.PartSnapshot: stopped")
			default:
			}
		}
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(it.Key())))
		bw.Write(hdr)
		bw.Write(it.Key())
		v := it.Value()
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(v)))
		bw.Write(hdr)
		if _, err := bw.Write(v); err != nil {
			return fmt.Errorf("wal.PartSnapshot: %w", err)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("wal.PartSnapshot: %w", err)
	}
	bw.WriteByte(0)
	return bw.Flush()
}

// maxSnapshotValue bounds one key or value read from a snapshot stream
// before it is allocated.
const maxSnapshotValue = 64 << 20

// RestorePartition replaces part's whole key range with a stream written
// by PartSnapshot.WriteTo, in one synced batch: a stream that is cut short
// or holds a key of another partition changes nothing.
func (db *DB) RestorePartition(part uint16, r io.Reader, stop <-chan struct{}) error {
	br := bufio.NewReaderSize(r, 256<<10)
	if f, err := br.ReadByte(); err != nil || f != snapshotFormat {
		return fmt.Errorf("wal.RestorePartition: %w: unknown snapshot format", ErrCorrupt)
	}
	lo := partPrefix(part)
	b := db.pdb.NewBatch()
	defer b.Close()
	b.DeleteRange(lo, prefixEnd(lo), nil)
	readField := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > maxSnapshotValue {
			return nil, fmt.Errorf("%w: snapshot field of %d bytes", ErrCorrupt, n)
		}
		buf := make([]byte, n)
		_, err = io.ReadFull(br, buf)
		return buf, err
	}
	for i := 0; ; i++ {
		if i%1024 == 0 && stop != nil {
			select {
			case <-stop:
				return fmt.Errorf("wal.RestorePartition: stopped")
			default:
			}
		}
		k, err := readField()
		if err != nil {
			return fmt.Errorf("wal.RestorePartition: %w: %v", ErrCorrupt, err)
		}
		if len(k) == 0 {
			break
		}
		if len(k) < 4 || k[0] != prefixPartition || binary.BigEndian.Uint16(k[1:3]) != part {
			return fmt.Errorf("wal.RestorePartition: %w: key %q in partition %d", ErrOutsidePartition, k, part)
		}
		v, err := readField()
		if err != nil {
			return fmt.Errorf("wal.RestorePartition: %w: %v", ErrCorrupt, err)
		}
		b.Set(k, v, nil)
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	// The partition's dedupe filter goes before its new keys land and is
	// built again from them after (dedupe.go).
	db.filter.invalidate(part)
	defer db.filter.queueRescan(part)
	if err := db.pdb.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("wal.RestorePartition: %w", err)
	}
	return nil
}

// SyncReplicas makes every replicated apply so far durable (an fsync of
// Pebble's log). The state machine's Sync calls it before the raft log
// behind those applies may be compacted away.
func (db *DB) SyncReplicas() error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("wal.SyncReplicas: %w", err)
	}
	return nil
}

// metaMember (m M) records that the store belongs to a cluster member and
// which: its partitions are replicas, written only by their state
// machines, and a node without its cluster flags must not deliver from
// them on its own.
var metaMember = []byte{prefixMeta, 'M'}

// ClusterMember returns the node id MarkClusterMember recorded, 0 if the
// store is a single node's.
func (db *DB) ClusterMember() (uint64, error) {
	v, err := db.get(metaMember)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("wal.ClusterMember: %w", err)
	case len(v) != 8:
		return 0, fmt.Errorf("%w: cluster member mark", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// MarkClusterMember records that the store is cluster member node's, with
// a synced write. It refuses a store that already holds partition data
// written by a single node (events, queues: anything in a partition with
// no applied raft index), which no replica would know of, and a store
// marked for another node.
func (db *DB) MarkClusterMember(node uint64) error {
	if node == 0 {
		return errors.New("wal.MarkClusterMember: node id 0")
	}
	have, err := db.ClusterMember()
	if err != nil {
		return err
	}
	switch {
	case have == node:
		return nil
	case have != 0:
		return fmt.Errorf("wal.MarkClusterMember: the store belongs to cluster member %d, not %d", have, node)
	}
	for p := 0; p < db.partitions; p++ {
		lo := partPrefix(uint16(p))
		_, any, err := db.lastKey(lo, prefixEnd(lo))
		if err != nil {
			return fmt.Errorf("wal.MarkClusterMember: %w", err)
		}
		if any {
			return fmt.Errorf("wal.MarkClusterMember: partition %d holds a single node's data; a cluster member starts from an empty data dir", p)
		}
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], node)
	if err := db.pdb.Set(metaMember, v[:], pebble.Sync); err != nil {
		return fmt.Errorf("wal.MarkClusterMember: %w", err)
	}
	return nil
}
