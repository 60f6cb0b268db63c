package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Expired is what one ExpireEvents call deleted.
type Expired struct {
	Events int
	// Dead counts the dead-letter entries deleted, by destination: whoever
	// keeps a count of them (the destination actors) subtracts these.
	Dead map[string]int
}

// ExpireEvents deletes events received before cutoff whose every delivery
// has finished (delivered or dead-lettered), with their dedupe keys,
// outbox entries, delivery records, dead-letter entries and
// no-destination entries, in
// one batch. An event still pending anywhere
// is kept, however old. It deletes at most limit events per call and
// reports what it deleted; call it again while Events equals limit.
func (db *DB) ExpireEvents(cutoff time.Time, limit int) (Expired, error) {
	b := db.NewBatch()
	x := Expired{Dead: map[string]int{}}
	var err error
	x.Events, err = db.collectExpired(b, cutoff, limit, x.Dead)
	if err != nil || x.Events == 0 {
		b.Discard()
		return Expired{}, err
	}
	b.Audit(AuditEntry{Action: "retention.expired", ObjectType: "event", ObjectID: "*",
		Detail: map[string]string{"events": fmt.Sprint(x.Events), "received_before": cutoff.UTC().Format(time.RFC3339)}})
	if err := db.CommitWait(b); err != nil {
		return Expired{}, fmt.Errorf("wal.ExpireEvents: %w", err)
	}
	return x, nil
}

// collectExpired adds the deletions to b, holding the store open while it
// reads.
func (db *DB) collectExpired(b *Batch, cutoff time.Time, limit int, dead map[string]int) (int, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return 0, ErrClosed
	}
	deleted := 0
	var statuses []string
	for p := 0; p < db.partitions && deleted < limit; p++ {
		lo := partKey(uint16(p), subEvent, 0)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			return 0, err
		}
		for ok := it.First(); ok && deleted < limit; ok = it.Next() {
			seq := binary.BigEndian.Uint64(it.Key()[len(lo):])
			e, err := decodeEventHead(uint16(p), seq, it.Value())
			if err != nil {
				it.Close()
				return 0, err
			}
			if !e.ReceivedAt.Before(cutoff) {
				break // sequences grow with time: the rest of the partition is newer
			}
			finished := true
			statuses = statuses[:0]
			for _, d := range e.Destinations {
				status, err := db.deliveryStatusLocked(d, seq)
				if err != nil && !errors.Is(err, ErrNotFound) {
					it.Close()
					return 0, err
				}
				if err != nil || status == StatusPending {
					finished = false
					break
				}
				statuses = append(statuses, status)
			}
			if !finished {
				continue
			}
			b.b.Delete(eventKey(uint16(p), seq), nil)
			if len(e.Destinations) == 0 {
				b.b.Delete(noDestKey(uint16(p), seq), nil)
			}
			// The key may have been taken by a newer event since the
			// window passed: delete it only if it is still this event's.
			dk := dedupeKey(uint16(p), e.Source, e.IdemKey)
			if v, err := db.getLocked(dk); err == nil && len(v) == 16 && binary.BigEndian.Uint64(v[:8]) == seq {
				b.b.Delete(dk, nil)
			}
			for i, d := range e.Destinations {
				part := db.DestPartition(d)
				// A cluster member's outbox entry whose acknowledgement
				// was lost would outlive the event and name it to the
				// next owner (or the orphan sweep), which would wait for
				// an event that is gone.
				b.b.Delete(outboxKey(uint16(p), seq, d), nil)
				b.b.Delete(destKey(part, subDelivery, d, seq), nil)
				b.b.Delete(destKey(part, subDead, d, seq), nil)
				if statuses[i] == StatusDead {
					dead[d]++
				}
			}
			deleted++
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
	}
	return deleted, nil
}

// DeliveryStatus reads the status of an event's delivery record at dest
// (ErrNotFound: no record), decoding nothing else of it.
func (db *DB) DeliveryStatus(dest string, evSeq uint64) (string, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return "", ErrClosed
	}
	return db.deliveryStatusLocked(dest, evSeq)
}

// deliveryStatusLocked reads a delivery record's status; the caller holds
// closeMu shared.
func (db *DB) deliveryStatusLocked(dest string, evSeq uint64) (string, error) {
	v, err := db.getLocked(destKey(db.DestPartition(dest), subDelivery, dest, evSeq))
	if err != nil {
		return "", err
	}
	d, err := decodeDelivery(v)
	if err != nil {
		return "", fmt.Errorf("%w: delivery %s/%d", ErrCorrupt, dest, evSeq)
	}
	return d.Status, nil
}

// ExpireAudit deletes audit entries written before cutoff, at most limit
// per call (call again while it returns limit). Entries are in sequence
// order and sequences grow with time, so it deletes from the oldest up to
// the first newer entry: whole blocks with one range deletion, and the
// part of a block it stops in by writing what is left of it under its
// first remaining sequence. It records what it did in a new entry.
func (db *DB) ExpireAudit(cutoff time.Time, limit int) (int, error) {
	lo := []byte{prefixAudit}
	n := 0
	var end []byte       // the last block wholly or partly expired
	var rest *auditBlock // what is left of a block expired in part
	err := db.scan(lo, prefixEnd(lo), func(k, v []byte) error {
		if n == limit {
			return errStopScan
		}
		blk, err := parseAuditBlock(k, v)
		if err != nil {
			return err
		}
		i, err := blk.expired(cutoff, limit-n)
		if err != nil {
			return err
		}
		n += i
		if i == 0 {
			return errStopScan
		}
		end = append(end[:0], k...)
		if i < len(blk.entries) {
			blk.entries = blk.entries[i:]
			blk.first += uint64(i)
			rest = &blk
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, fmt.Errorf("wal.ExpireAudit: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	b := db.NewBatch()
	b.b.DeleteRange(lo, append(end, 0), nil)
	// The refusal blocks among them are no longer listed (a refusal block
	// expired only in part stays until audit retention takes the rest).
	b.b.DeleteRange([]byte{prefixRefusals}, append(refusalsKey(binary.BigEndian.Uint64(end[1:])), 0), nil)
	if rest != nil { // never a legacy entry: it is a block of one
		b.b.Set(auditKey(rest.first), appendBlock(nil, rest.entries), nil)
	}
	b.Audit(AuditEntry{Action: "retention.audit_expired", ObjectType: "audit", ObjectID: "*",
		Detail: map[string]string{"entries": fmt.Sprint(n), "written_before": cutoff.UTC().Format(time.RFC3339)}})
	if err := db.CommitWait(b); err != nil {
		return 0, fmt.Errorf("wal.ExpireAudit: %w", err)
	}
	return n, nil
}

// ExpireRefusals deletes refusal rows (NewRefusalBatch) written before
// cutoff, oldest first, block by block until it has deleted at least limit
// rows or reaches a newer row (what is left of that block is written under
// its first remaining sequence, as ExpireAudit does). Refusal rows have a retention of their own, shorter than
// audit's: they are what strangers make the node write. It reads only
// the refusal blocks (listed under prefixRefusals), never the rest of
// the audit log, and records what it did in a new entry.
func (db *DB) ExpireRefusals(cutoff time.Time, limit int) (int, error) {
	lo := []byte{prefixRefusals}
	var firsts []uint64
	err := db.scan(lo, prefixEnd(lo), func(k, _ []byte) error {
		if len(firsts) == limit {
			return errStopScan
		}
		if len(k) != 9 {
			return fmt.Errorf("%w: refusals key %x", ErrCorrupt, k)
		}
		firsts = append(firsts, binary.BigEndian.Uint64(k[1:]))
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, fmt.Errorf("wal.ExpireRefusals: %w", err)
	}
	n, listed := 0, 0
	b := db.NewBatch()
	defer func() {
		if b != nil {
			b.Discard()
		}
	}()
	for _, first := range firsts {
		if n >= limit {
			break
		}
		v, err := db.get(auditKey(first))
		if errors.Is(err, ErrNotFound) { // audit retention took it
			b.b.Delete(refusalsKey(first), nil)
			listed++
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wal.ExpireRefusals: %w", err)
		}
		blk, err := parseAuditBlock(auditKey(first), v)
		if err != nil {
			return 0, fmt.Errorf("wal.ExpireRefusals: %w", err)
		}
		i, err := blk.expired(cutoff, len(blk.entries))
		if err != nil {
			return 0, fmt.Errorf("wal.ExpireRefusals: %w", err)
		}
		if i == 0 {
			break
		}
		b.b.Delete(auditKey(first), nil)
		b.b.Delete(refusalsKey(first), nil)
		n += i
		listed++
		if i < len(blk.entries) { // the rest, under its first sequence, still listed
			b.b.Set(auditKey(first+uint64(i)), appendBlock(nil, blk.entries[i:]), nil)
			b.b.Set(refusalsKey(first+uint64(i)), nil, nil)
			break
		}
	}
	if listed == 0 {
		return 0, nil
	}
	if n > 0 {
		b.Audit(AuditEntry{Action: "retention.refusals_expired", ObjectType: "audit", ObjectID: "*",
			Detail: map[string]string{"entries": fmt.Sprint(n), "written_before": cutoff.UTC().Format(time.RFC3339)}})
	}
	err = db.CommitWait(b)
	b = nil
	if err != nil {
		return 0, fmt.Errorf("wal.ExpireRefusals: %w", err)
	}
	return n, nil
}

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("wal: stop scan")

// expired counts the block's leading entries written before cutoff, at
// most n of them: the part of it that retention takes.
func (blk *auditBlock) expired(cutoff time.Time, n int) (int, error) {
	i := 0
	for ; i < len(blk.entries) && i < n; i++ {
		e, err := blk.entry(i)
		if err != nil {
			return 0, err
		}
		if !e.At.Before(cutoff) {
			break
		}
	}
	return i, nil
}
