package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ExpireEvents deletes events received before cutoff whose every delivery
// has finished (delivered or dead-lettered), with their dedupe keys,
// delivery records and dead-letter entries. An event still pending anywhere
// is kept, however old. It deletes at most limit events per call and
// reports how many it deleted; call it again while that equals limit.
func (db *DB) ExpireEvents(cutoff time.Time, limit int) (int, error) {
	deleted := 0
	b := db.NewBatch()
	for p := 0; p < db.partitions && deleted < limit; p++ {
		lo := partKey(uint16(p), subEvent, 0)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			b.Discard()
			return 0, err
		}
		for ok := it.First(); ok && deleted < limit; ok = it.Next() {
			seq := binary.BigEndian.Uint64(it.Key()[len(lo):])
			e, err := decodeEvent(uint16(p), seq, it.Value())
			if err != nil {
				it.Close()
				b.Discard()
				return 0, err
			}
			if !e.ReceivedAt.Before(cutoff) {
				break // sequences grow with time: the rest of the partition is newer
			}
			finished := true
			for _, d := range e.Destinations {
				rec, err := db.GetDelivery(d, seq)
				if err != nil && !errors.Is(err, ErrNotFound) {
					it.Close()
					b.Discard()
					return 0, err
				}
				if err != nil || rec.Status == StatusPending {
					finished = false
					break
				}
			}
			if !finished {
				continue
			}
			b.b.Delete(eventKey(uint16(p), seq), nil)
			b.b.Delete(dedupeKey(uint16(p), e.Source, e.IdemKey), nil)
			for _, d := range e.Destinations {
				part := db.DestPartition(d)
				b.b.Delete(destKey(part, subDelivery, d, seq), nil)
				b.b.Delete(destKey(part, subDead, d, seq), nil)
			}
			deleted++
		}
		if err := it.Close(); err != nil {
			b.Discard()
			return 0, err
		}
	}
	if deleted == 0 {
		b.Discard()
		return 0, nil
	}
	b.Audit(AuditEntry{Action: "retention.expired", ObjectType: "event", ObjectID: "*",
		Detail: map[string]string{"events": fmt.Sprint(deleted), "received_before": cutoff.UTC().Format(time.RFC3339)}})
	if err := db.CommitWait(b); err != nil {
		return 0, fmt.Errorf("wal.ExpireEvents: %w", err)
	}
	return deleted, nil
}
