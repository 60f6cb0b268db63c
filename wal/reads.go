package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func (db *DB) get(k []byte) ([]byte, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	return db.getLocked(k)
}

// getLocked reads a key; the caller holds closeMu shared.
func (db *DB) getLocked(k []byte) ([]byte, error) {
	v, closer, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// GetEvent reads one event.
func (db *DB) GetEvent(part uint16, seq uint64) (*Event, error) {
	if int(part) >= db.partitions {
		return nil, ErrNotFound
	}
	v, err := db.get(eventKey(part, seq))
	if err != nil {
		return nil, fmt.Errorf("wal.GetEvent %s: %w", EventID(part, seq), err)
	}
	return decodeEvent(part, seq, v)
}

// GetEventByID reads one event by its public id.
func (db *DB) GetEventByID(id string) (*Event, error) {
	part, seq, err := ParseEventID(id)
	if err != nil {
		return nil, err
	}
	return db.GetEvent(part, seq)
}

func (db *DB) scan(lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := db.newIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// GetDedupe reads a dedupe key: the event it belongs to and when it was
// received.
func (db *DB) GetDedupe(part uint16, source, key string) (seq uint64, at time.Time, err error) {
	return db.getDedupe(part, source, key, math.MinInt64)
}

// GetDedupeAfter is GetDedupe for a key received after `after` (the start
// of the dedupe window): an older key answers ErrNotFound, as a missing one
// does. A key never seen is mostly answered from memory (dedupe.go).
func (db *DB) GetDedupeAfter(part uint16, source, key string, after time.Time) (seq uint64, at time.Time, err error) {
	return db.getDedupe(part, source, key, unixNanos(after))
}

// unixNanos is t in Unix nanoseconds, clamped to what an int64 holds.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func (db *DB) getDedupe(part uint16, source, key string, after int64) (uint64, time.Time, error) {
	k := dedupeKey(part, source, key)
	if !db.filter.mayContain(part, k, after) {
		return 0, time.Time{}, ErrNotFound
	}
	v, err := db.get(k)
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(v) != 16 {
		return 0, time.Time{}, fmt.Errorf("%w: dedupe value for %q", ErrCorrupt, key)
	}
	nanos := int64(binary.BigEndian.Uint64(v[8:]))
	if nanos <= after {
		return 0, time.Time{}, ErrNotFound
	}
	return binary.BigEndian.Uint64(v[:8]), time.Unix(0, nanos), nil
}

// OutboxEntry is an event that has not yet reached a destination's queue.
type OutboxEntry struct {
	EventPart uint16
	EventSeq  uint64
	Dest      string
}

// ScanOutbox calls fn for every outbox entry of a partition, in event order.
func (db *DB) ScanOutbox(part uint16, fn func(OutboxEntry)) error {
	lo := partKey(part, subOutbox, 0)
	return db.scan(lo, prefixEnd(lo), func(k, _ []byte) error {
		rest := k[len(lo):]
		if len(rest) < 8 {
			return fmt.Errorf("%w: outbox key %x", ErrCorrupt, k)
		}
		fn(OutboxEntry{EventPart: part, EventSeq: binary.BigEndian.Uint64(rest[:8]), Dest: string(rest[8:])})
		return nil
	})
}

// QueuePage returns up to limit entries of dest's queue with qseq > after.
func (db *DB) QueuePage(dest string, after uint64, limit int) ([]QueueEntry, error) {
	p := destPrefix(db.DestPartition(dest), subQueue, dest)
	lo := binary.BigEndian.AppendUint64(append([]byte(nil), p...), after+1)
	if after == ^uint64(0) {
		return nil, nil
	}
	var out []QueueEntry
	errStop := errors.New("stop")
	err := db.scan(lo, prefixEnd(p), func(k, v []byte) error {
		if len(k) != len(p)+8 || len(v) != 10 {
			return fmt.Errorf("%w: queue key %x", ErrCorrupt, k)
		}
		out = append(out, QueueEntry{
			QSeq:      binary.BigEndian.Uint64(k[len(p):]),
			EventPart: binary.BigEndian.Uint16(v[:2]),
			EventSeq:  binary.BigEndian.Uint64(v[2:]),
		})
		if len(out) == limit {
			return errStop
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, err
}

// LastQSeq is the highest queue sequence of dest (0 when empty).
func (db *DB) LastQSeq(dest string) (uint64, error) {
	p := destPrefix(db.DestPartition(dest), subQueue, dest)
	k, ok, err := db.lastKey(p, prefixEnd(p))
	if err != nil || !ok {
		return 0, err
	}
	return binary.BigEndian.Uint64(k[len(p):]), nil
}

// QueueDepth counts dest's pending deliveries (a scan: for reads, not the hot path).
func (db *DB) QueueDepth(dest string) (int, error) {
	p := destPrefix(db.DestPartition(dest), subQueue, dest)
	n := 0
	err := db.scan(p, prefixEnd(p), func(_, _ []byte) error { n++; return nil })
	return n, err
}

// DestsWithPending lists the destinations whose queue is not empty, seeking
// past each destination's range rather than reading it.
func (db *DB) DestsWithPending() ([]string, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return nil, ErrClosed
	}
	return db.destsInLocked(subQueue)
}

// GetDelivery reads an event's delivery record at dest.
func (db *DB) GetDelivery(dest string, evSeq uint64) (*Delivery, error) {
	v, err := db.get(destKey(db.DestPartition(dest), subDelivery, dest, evSeq))
	if err != nil {
		return nil, err
	}
	d, err := decodeDelivery(v)
	if err != nil {
		return nil, fmt.Errorf("%w: delivery %s/%d", ErrCorrupt, dest, evSeq)
	}
	return &d, nil
}

// ListDead returns dest's dead-lettered event ids with seq > after, oldest first.
func (db *DB) ListDead(dest string, after uint64, limit int) (ids []string, next uint64, err error) {
	p := destPrefix(db.DestPartition(dest), subDead, dest)
	lo := binary.BigEndian.AppendUint64(append([]byte(nil), p...), after+1)
	errStop := errors.New("stop")
	err = db.scan(lo, prefixEnd(p), func(k, v []byte) error {
		if len(ids) == limit {
			return errStop
		}
		ids = append(ids, string(v))
		next = binary.BigEndian.Uint64(k[len(p):])
		return nil
	})
	if err == errStop {
		return ids, next, nil
	}
	return ids, 0, err
}

// ListEvents returns events with seq < before (0: from the newest), newest
// first across all partitions, that match, at most limit. next is the
// cursor for the following page, 0 at the end. Sequences are unique and
// never reused, so a cursor never skips or repeats an event while new ones
// arrive (they sort after the cursor). match sees each event without its
// headers and body.
func (db *DB) ListEvents(before uint64, limit int, match func(*Event) bool) (out []*Event, next uint64, err error) {
	var m func(*Event) (bool, bool)
	if match != nil {
		m = func(e *Event) (bool, bool) { return match(e), false }
	}
	return db.ListEventsUntil(before, limit, m)
}

// ListEventsUntil is ListEvents whose match can also end the scan: when it
// reports stop, no older event is looked at (a time range's lower bound,
// since sequences grow with time). The page then ends there with next 0.
// match sees each event without its headers and body.
func (db *DB) ListEventsUntil(before uint64, limit int, match func(*Event) (ok, stop bool)) (out []*Event, next uint64, err error) {
	return db.QueryEvents(EventQuery{Before: before, Match: match}, limit)
}

// CountEvents counts the stored events, stopping at max: more reports
// that there are more. It reads keys only, no record.
func (db *DB) CountEvents(max int) (n int, more bool, err error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return 0, false, ErrClosed
	}
	for p := 0; p < db.partitions; p++ {
		lo := partKey(uint16(p), subEvent, 0)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			return 0, false, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if n == max {
				it.Close()
				return n, true, nil
			}
			n++
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return 0, false, err
		}
	}
	return n, false, nil
}

// CountDead counts dest's dead-lettered events (a scan: for reads and
// metrics, not the hot path).
func (db *DB) CountDead(dest string) (int, error) {
	p := destPrefix(db.DestPartition(dest), subDead, dest)
	n := 0
	err := db.scan(p, prefixEnd(p), func(_, _ []byte) error { n++; return nil })
	return n, err
}

// DestCount is one destination's pending deliveries and dead letters.
type DestCount struct{ Depth, Dead int }

// CountByDestination counts every destination's queue entries and
// dead-letter entries in one pass over those ranges. It reads every such
// key: for start-up, never per request.
func (db *DB) CountByDestination() (map[string]DestCount, error) {
	out := map[string]DestCount{}
	for p := 0; p < db.partitions; p++ {
		for _, sub := range []byte{subQueue, subDead} {
			lo := partKey(uint16(p), sub, 0)
			var cur []byte
			n := 0
			flush := func() {
				if n == 0 {
					return
				}
				c := out[string(cur)]
				if sub == subQueue {
					c.Depth += n
				} else {
					c.Dead += n
				}
				out[string(cur)] = c
			}
			err := db.scan(lo, prefixEnd(lo), func(k, _ []byte) error {
				rest := k[len(lo):]
				i := bytes.IndexByte(rest, 0)
				if i < 0 {
					return fmt.Errorf("%w: key %x", ErrCorrupt, k)
				}
				if n > 0 && string(rest[:i]) == string(cur) {
					n++
					return nil
				}
				flush()
				cur, n = append(cur[:0], rest[:i]...), 1
				return nil
			})
			if err != nil {
				return nil, err
			}
			flush()
		}
	}
	return out, nil
}
