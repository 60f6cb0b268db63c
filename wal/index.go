package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// Indexes.
//
// The event list filters by status and destination, and a million stored
// events cannot be read per page to find the few that match. Every status
// at a destination has its keys, each ordered by event sequence:
//
//	p <dpart> w <dest> 0 <seq:8>   pending: in dest's queue (value: the event's partition)
//	p <dpart> x <dest> 0 <seq:8>   dead-lettered (value: the event id)
//	p <dpart> r <dest> 0 <seq:8>   any record: delivered, dead, or pending with attempts
//	p <dpart> i <dest> 0 <seq:8>   pending: in dest's inbox, not yet in its queue (a cluster's)
//	p <epart> o <seq:8> <dest>     pending: not yet in dest's queue (the outbox)
//	p <epart> n <seq:8>            routed to no destination
//
// Each is written in the batch that changes what it lists, so no crash
// can leave one behind its records: PutQueue and DeleteQueue write the
// queue and its pending index together (enqueue, replay, redrive; the
// delivery outcome), PutDelivery the record and its dead-letter entry,
// DeleteDead the entry when a replay takes the event back, PutEvent the
// no-destination entry, and ExpireEvents deletes an event with all of
// them. Ingest writes nothing more than before: a routed event's outbox
// keys already say it is pending, and only an event with no outbox key
// gets a no-destination one. The pending index costs the destination
// actor one key when an event joins its queue and one delete when it
// leaves; "delivered" has no keys of its own (it is a record that is not
// dead and not queued), so the outcome of a delivery adds no write.

// indexVersionKey records that the indexes above are complete: a data dir
// written before they existed gets them built once, when it is opened.
var indexVersionKey = []byte{prefixMeta, 'I'}

// buildIndexes writes the pending index of every queue entry and the
// no-destination entry of every event routed nowhere, once per data dir.
// It runs before the store takes writes.
func (db *DB) buildIndexes() error {
	if _, err := db.get(indexVersionKey); err == nil {
		return nil
	} else if err != ErrNotFound {
		return err
	}
	b := db.pdb.NewBatch()
	defer func() { b.Close() }()
	flush := func() error {
		if b.Len() < 4<<20 {
			return nil
		}
		if err := db.pdb.Apply(b, pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b = db.pdb.NewBatch()
		return nil
	}
	for p := range db.partitions {
		part := uint16(p)
		lo := partKey(part, subQueue, 0)
		err := db.scan(lo, prefixEnd(lo), func(k, v []byte) error {
			rest := k[len(lo):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 || len(v) != 10 {
				return ErrCorrupt
			}
			seq := binary.BigEndian.Uint64(v[2:])
			b.Set(destKey(part, subPending, string(rest[:i]), seq), v[:2], nil)
			return flush()
		})
		if err != nil {
			return err
		}
		lo = partKey(part, subEvent, 0)
		err = db.scan(lo, prefixEnd(lo), func(k, v []byte) error {
			seq, _ := seqTail(k)
			e, err := decodeEventHead(part, seq, v)
			if err != nil {
				return err
			}
			if len(e.Destinations) == 0 {
				b.Set(noDestKey(part, seq), nil, nil)
			}
			return flush()
		})
		if err != nil {
			return err
		}
	}
	b.Set(indexVersionKey, []byte("1"), nil)
	return db.pdb.Apply(b, pebble.Sync)
}

// CheckIndexes reads every index and the records it is built from, and
// reports the first entries where they disagree (nil: none). It reads the
// whole store: for tests and offline checks, never per request.
func (db *DB) CheckIndexes() error {
	var errs []error
	compare := func(what string, want, got map[[2]string]string) {
		for k, v := range want {
			if g, ok := got[k]; !ok {
				errs = append(errs, fmt.Errorf("%s: %s/%s missing", what, k[0], k[1]))
			} else if g != v {
				errs = append(errs, fmt.Errorf("%s: %s/%s holds %q, want %q", what, k[0], k[1], g, v))
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				errs = append(errs, fmt.Errorf("%s: %s/%s names nothing", what, k[0], k[1]))
			}
		}
	}
	// destEntries reads p <part> sub <dest> 0 <n:8> keys.
	destEntries := func(part uint16, sub byte, fn func(dest string, n uint64, v []byte) error) error {
		lo := partKey(part, sub, 0)
		return db.scan(lo, prefixEnd(lo), func(k, v []byte) error {
			rest := k[len(lo):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 || len(rest) != i+9 {
				return fmt.Errorf("%w: key %x", ErrCorrupt, k)
			}
			return fn(string(rest[:i]), binary.BigEndian.Uint64(rest[i+1:]), v)
		})
	}
	key := func(a string, n uint64) [2]string { return [2]string{a, strconv.FormatUint(n, 10)} }
	for p := range db.partitions {
		part := uint16(p)
		wantW, gotW := map[[2]string]string{}, map[[2]string]string{}
		wantX, gotX := map[[2]string]string{}, map[[2]string]string{}
		wantN, gotN := map[[2]string]string{}, map[[2]string]string{}
		err := errors.Join(
			destEntries(part, subQueue, func(dest string, _ uint64, v []byte) error {
				if len(v) != 10 {
					return fmt.Errorf("%w: queue value of %s", ErrCorrupt, dest)
				}
				wantW[key(dest, binary.BigEndian.Uint64(v[2:]))] = string(v[:2])
				return nil
			}),
			destEntries(part, subPending, func(dest string, seq uint64, v []byte) error {
				gotW[key(dest, seq)] = string(v)
				return nil
			}),
			destEntries(part, subDelivery, func(dest string, seq uint64, v []byte) error {
				d, err := decodeDelivery(v)
				if err != nil {
					return fmt.Errorf("%w: delivery %s/%d", ErrCorrupt, dest, seq)
				}
				if d.Status == StatusDead {
					wantX[key(dest, seq)] = d.EventID
				}
				return nil
			}),
			destEntries(part, subDead, func(dest string, seq uint64, v []byte) error {
				gotX[key(dest, seq)] = string(v)
				return nil
			}),
			db.scan(partKey(part, subEvent, 0), prefixEnd(partKey(part, subEvent, 0)), func(k, v []byte) error {
				seq, _ := seqTail(k)
				e, err := decodeEventHead(part, seq, v)
				if err != nil {
					return err
				}
				if len(e.Destinations) == 0 {
					wantN[key(e.ID(), 0)] = ""
				}
				return nil
			}),
			db.scan(partKey(part, subNoDest, 0), prefixEnd(partKey(part, subNoDest, 0)), func(k, v []byte) error {
				seq, _ := seqTail(k)
				gotN[key(EventID(part, seq), 0)] = string(v)
				return nil
			}),
		)
		if err != nil {
			return err
		}
		compare("pending index", wantW, gotW)
		compare("dead-letter index", wantX, gotX)
		compare("no-destination index", wantN, gotN)
		if len(errs) > 0 {
			break
		}
	}
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more", len(errs)-5))
	}
	return errors.Join(errs...)
}
