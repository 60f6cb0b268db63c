package wal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Batch collects writes that become durable together, through Commit.
type Batch struct {
	db  *DB
	b   *pebble.Batch
	buf []byte
	// audit holds the batch's audit entries, encoded (length-prefixed),
	// until the commit gives them their sequences (flushAudit).
	audit  []byte
	audits int
	// refusals: the audit entries are refusal rows (NewRefusalBatch).
	refusals bool
}

// NewBatch starts an empty batch.
func (db *DB) NewBatch() *Batch { return &Batch{db: db, b: db.pdb.NewBatch()} }

// NewRefusalBatch starts a batch whose audit entries are refusal rows
// (tallies of requests refused before authentication): they are written
// in an audit block of their own, listed for ExpireRefusals and its
// shorter retention, never in a block with other entries.
func (db *DB) NewRefusalBatch() *Batch {
	b := db.NewBatch()
	b.refusals = true
	return b
}

// Count is the number of writes in the batch.
func (b *Batch) Count() int { return int(b.b.Count()) + b.audits }

// Discard drops a batch that will not be committed.
func (b *Batch) Discard() { b.b.Close() }

// PutEvent stores an event's raw record, and lists it among the events
// with no destination when it has none (a routed event has outbox keys
// instead, so no event pays for both). The record is encoded in place in
// the batch: the body, the largest thing a node writes, is copied once.
func (b *Batch) PutEvent(e *Event) {
	var kb [12]byte
	k := appendEventKey(kb[:0], e.Partition, e.Seq)
	size := eventSize(e)
	op := b.b.SetDeferred(len(k), size)
	copy(op.Key, k)
	if v := appendEvent(op.Value[:0], e); len(v) != size {
		panic(fmt.Sprintf("wal: event record of %d bytes, sized %d", len(v), size))
	}
	op.Finish()
	if len(e.Destinations) == 0 {
		b.b.Set(noDestKey(e.Partition, e.Seq), nil, nil)
	}
}

// PutDedupe records that (source, key) is event seq, received at.
func (b *Batch) PutDedupe(part uint16, source, key string, seq uint64, at time.Time) {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], seq)
	binary.BigEndian.PutUint64(v[8:], uint64(at.UnixNano()))
	k := dedupeKey(part, source, key)
	b.db.filter.add(part, k, at.UnixNano())
	b.b.Set(k, v[:], nil)
}

// PutOutbox records that event (part, seq) still has to reach dest's queue.
func (b *Batch) PutOutbox(part uint16, seq uint64, dest string) {
	b.b.Set(outboxKey(part, seq, dest), nil, nil)
}

// DeleteOutbox acknowledges an outbox entry.
func (b *Batch) DeleteOutbox(part uint16, seq uint64, dest string) {
	b.b.Delete(outboxKey(part, seq, dest), nil)
}

// PutQueue appends event (evPart, evSeq) to dest's queue at qseq, and to
// the pending index that lists the queue by event sequence.
func (b *Batch) PutQueue(dest string, qseq uint64, evPart uint16, evSeq uint64) {
	part := b.db.DestPartition(dest)
	var v [10]byte
	b.b.Set(destKey(part, subQueue, dest, qseq), appendQueueValue(v[:0], evPart, evSeq), nil)
	b.b.Set(destKey(part, subPending, dest, evSeq), v[:2], nil)
}

// DeleteQueue removes a finished delivery, event evSeq at qseq, from dest's
// queue and from its pending index.
func (b *Batch) DeleteQueue(dest string, qseq, evSeq uint64) {
	part := b.db.DestPartition(dest)
	b.b.Delete(destKey(part, subQueue, dest, qseq), nil)
	b.b.Delete(destKey(part, subPending, dest, evSeq), nil)
}

// PutDelivery stores an event's delivery record at a destination, and adds
// it to the dead-letter index when its status is dead. A destination with
// no record for a queued event reads it as pending with no attempts, which
// spares the hot path a write.
func (b *Batch) PutDelivery(evSeq uint64, d *Delivery) {
	part := b.db.DestPartition(d.Destination)
	b.buf = appendDelivery(b.buf[:0], d)
	b.b.Set(destKey(part, subDelivery, d.Destination, evSeq), b.buf, nil)
	if d.Status == StatusDead {
		b.b.Set(destKey(part, subDead, d.Destination, evSeq), []byte(d.EventID), nil)
	}
}

// DeleteDead removes an event from dest's dead-letter index (it is being
// replayed).
func (b *Batch) DeleteDead(dest string, evSeq uint64) {
	b.b.Delete(destKey(b.db.DestPartition(dest), subDead, dest, evSeq), nil)
}

// PutConfig stores a config object as JSON.
func (b *Batch) PutConfig(kind byte, slug string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.b.Set(configKey(kind, slug), raw, nil)
	return nil
}

// DeleteConfig removes a config object.
func (b *Batch) DeleteConfig(kind byte, slug string) {
	b.b.Delete(configKey(kind, slug), nil)
}

// DestPartition is the partition that holds a destination's queue.
func (db *DB) DestPartition(dest string) uint16 { return Partition(db.partitions, dest) }

// EventPartition is the partition of an event's keys.
func (db *DB) EventPartition(source, key string) uint16 {
	return Partition(db.partitions, source, key)
}
