package wal

// The inbox of a replicated partition.
//
// In a cluster the order of an ordered destination is the order of its
// partition's raft log: before a sender hears 2xx, its event is committed
// in the event's partition and then an inbox entry naming it is committed
// in each ordered destination's partition. The destination's owner takes
// inbox entries into the queue (deleting them in the same write), so a
// sender that waited for A's 2xx before sending B finds A ahead of B
// whichever nodes took them and however far behind a replica of A's
// partition was.
//
//	p <part:2> i <dest> 0 <seq:8>    inbox: event seq -> raft index (8) and event partition (2)
//
// The key is the event's sequence (unique across partitions in a cluster)
// so the owner's write can delete it knowing only the event; the value
// holds the raft index that orders the entries.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

const subInbox = 'i'

// InboxEntry is one event waiting in a destination's inbox.
type InboxEntry struct {
	Index     uint64 // raft index of the entry that put it there: the order
	EventPart uint16
	EventSeq  uint64
}

// PutInbox adds event (evPart, evSeq) to dest's inbox at raft index. dest
// must live in the batch's partition.
func (rb *ReplicaBatch) PutInbox(dest string, evPart uint16, evSeq, index uint64) error {
	if p := rb.db.DestPartition(dest); p != rb.part {
		return fmt.Errorf("%w: destination %q lives in partition %d, not %d", ErrOutsidePartition, dest, p, rb.part)
	}
	var v [10]byte
	binary.BigEndian.PutUint64(v[:8], index)
	binary.BigEndian.PutUint16(v[8:], evPart)
	rb.b.Set(destKey(rb.part, subInbox, dest, evSeq), v[:], nil)
	return nil
}

// DeleteInbox removes event evSeq from dest's inbox (the owner took it).
func (b *Batch) DeleteInbox(dest string, evSeq uint64) {
	b.b.Delete(destKey(b.db.DestPartition(dest), subInbox, dest, evSeq), nil)
}

// InboxHolds reports whether event evSeq is in dest's inbox or has a
// delivery record there (it was taken into the queue already): either way
// a second inbox entry for it would deliver it twice.
func (db *DB) InboxHolds(dest string, evSeq uint64) (bool, error) {
	part := db.DestPartition(dest)
	for _, sub := range []byte{subInbox, subDelivery} {
		_, err := db.get(destKey(part, sub, dest, evSeq))
		switch {
		case err == nil:
			return true, nil
		case !errors.Is(err, ErrNotFound):
			return false, fmt.Errorf("wal.InboxHolds: %w", err)
		}
	}
	return false, nil
}

// ScanInbox returns dest's inbox in raft order.
func (db *DB) ScanInbox(dest string) ([]InboxEntry, error) {
	lo := destPrefix(db.DestPartition(dest), subInbox, dest)
	var out []InboxEntry
	err := db.scan(lo, prefixEnd(lo), func(k, v []byte) error {
		if len(k) != len(lo)+8 || len(v) != 10 {
			return fmt.Errorf("%w: inbox entry %x", ErrCorrupt, k)
		}
		out = append(out, InboxEntry{
			Index:     binary.BigEndian.Uint64(v[:8]),
			EventPart: binary.BigEndian.Uint16(v[8:]),
			EventSeq:  binary.BigEndian.Uint64(k[len(lo):]),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("wal.ScanInbox: %w", err)
	}
	slices.SortFunc(out, func(a, b InboxEntry) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	return out, nil
}

// DestsWithWork lists the destinations of partition part that have
// something to deliver: a queue or an inbox there, or an outbox entry in
// any partition. A new owner of part wakes exactly these.
func (db *DB) DestsWithWork(part uint16) ([]string, error) {
	seen := map[string]bool{}
	if err := db.destsWithKeys(part, seen); err != nil {
		return nil, fmt.Errorf("wal.DestsWithWork: %w", err)
	}
	for p := 0; p < db.partitions; p++ {
		err := db.ScanOutbox(uint16(p), func(e OutboxEntry) {
			if db.DestPartition(e.Dest) == part {
				seen[e.Dest] = true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("wal.DestsWithWork: %w", err)
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}

// destsWithKeys adds to seen the destinations with a queue or an inbox in
// partition part.
func (db *DB) destsWithKeys(part uint16, seen map[string]bool) error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	for _, sub := range []byte{subQueue, subInbox} {
		if err := db.skipScanLocked(partKey(part, sub, 0), func(name string) []byte {
			seen[name] = true
			return prefixEnd(destPrefix(part, sub, name))
		}); err != nil {
			return err
		}
	}
	return nil
}
