package wal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// AuditEntry is one state transition.
type AuditEntry struct {
	Seq        uint64            `json:"seq"`
	At         time.Time         `json:"at"`
	Action     string            `json:"action"`
	ObjectType string            `json:"object_type"`
	ObjectID   string            `json:"object_id"`
	Actor      string            `json:"actor,omitempty"`
	ReplayID   string            `json:"replay_id,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
}

// Audit appends an audit entry to the batch; it becomes durable with the
// state change it records.
func (b *Batch) Audit(e AuditEntry) {
	e.Seq = b.db.auditSeq.Add(1)
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	v, _ := json.Marshal(&e)
	b.b.Set(auditKey(e.Seq), v, nil)
}

// ListAudit returns audit entries with seq < before (0: from the newest),
// newest first, that match, at most limit of them. next is the cursor for
// the following page, 0 at the end.
func (db *DB) ListAudit(before uint64, limit int, match func(*AuditEntry) bool) (out []AuditEntry, next uint64, err error) {
	lo := []byte{prefixAudit}
	hi := prefixEnd(lo)
	if before > 0 {
		hi = auditKey(before)
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		var e AuditEntry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, 0, fmt.Errorf("%w: audit %x", ErrCorrupt, it.Key())
		}
		if len(it.Key()) == 9 {
			e.Seq = binary.BigEndian.Uint64(it.Key()[1:])
		}
		if match != nil && !match(&e) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		out = append(out, e)
	}
	return out, 0, it.Error()
}
