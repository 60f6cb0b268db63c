package wal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/webhookops/webhookops/wal/model"
)

// AuditEntry is one state transition.
type AuditEntry = model.AuditEntry

// Audit appends an audit entry to the batch; it becomes durable with the
// state change it records. Its sequence is given when the batch is
// committed: the entries of one group commit share one key (see
// auditBlock), in commit order.
func (b *Batch) Audit(e AuditEntry) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	b.buf = appendAuditEntry(b.buf[:0], &e)
	b.audit = binary.AppendUvarint(b.audit, uint64(len(b.buf)))
	b.audit = append(b.audit, b.buf...)
	b.audits++
}

// Audit log layout. Before group commits wrote blocks, each entry was its
// own key with a JSON value; those still read (a value starting with '{'
// is one entry whose sequence is its key's).
//
//	u <first seq:8> -> auditBlockFormat, then per entry: uvarint length, entry
//	entry: varint at (unix ns) | str action | str object type | str object id |
//	       str actor | str replay id | uvarint n | n * (str key, str value)
//	str:   a word (words.go)
//
// Entry i of a block has sequence first+i. Detail keys are written sorted.
const auditBlockFormat = 0x01

// auditBlockOverhead bounds what a block adds to a batch beside its
// entries: its key, format byte and record header. A group writes at most
// two: its entries, and its refusal rows with their listing.
const auditBlockOverhead = 32

// appendAuditEntry encodes e without its sequence.
func appendAuditEntry(b []byte, e *AuditEntry) []byte {
	b = binary.AppendVarint(b, unixNanos(e.At))
	b = appendWord(b, e.Action)
	b = appendWord(b, e.ObjectType)
	b = appendWord(b, e.ObjectID)
	b = appendWord(b, e.Actor)
	b = appendWord(b, e.ReplayID)
	b = binary.AppendUvarint(b, uint64(len(e.Detail)))
	// Sorted without slices.Sorted(maps.Keys(...)), whose allocations were
	// 4% of a node's CPU under full ingest: two entries per event.
	var small [8]string
	keys := small[:0]
	for k := range e.Detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendWord(b, k)
		b = appendWord(b, e.Detail[k])
	}
	return b
}

// decodeAuditEntry decodes what appendAuditEntry wrote; it never panics.
func decodeAuditEntry(b []byte, seq uint64) (AuditEntry, error) {
	d := decoder{b: b}
	e := AuditEntry{Seq: seq}
	e.At = time.Unix(0, d.varint()).UTC()
	e.Action = d.word()
	e.ObjectType = d.word()
	e.ObjectID = d.word()
	e.Actor = d.word()
	e.ReplayID = d.word()
	if n := d.count(); n > 0 {
		e.Detail = make(map[string]string, n)
		for range n {
			k := d.word()
			e.Detail[k] = d.word()
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return AuditEntry{}, fmt.Errorf("%w: audit entry %d", ErrCorrupt, seq)
	}
	return e, nil
}

// auditBlock is one audit key: its first sequence and its entries, still
// encoded.
type auditBlock struct {
	first   uint64
	entries [][]byte // one per entry
	legacy  bool     // entries[0] is the JSON of a single entry
}

func parseAuditBlock(k, v []byte) (auditBlock, error) {
	if len(k) != 9 {
		return auditBlock{}, fmt.Errorf("%w: audit key %x", ErrCorrupt, k)
	}
	blk := auditBlock{first: binary.BigEndian.Uint64(k[1:])}
	switch {
	case len(v) > 0 && v[0] == '{':
		blk.entries, blk.legacy = [][]byte{v}, true
		return blk, nil
	case len(v) > 1 && v[0] == auditBlockFormat:
	default:
		return auditBlock{}, fmt.Errorf("%w: audit %x has unknown format", ErrCorrupt, k)
	}
	d := decoder{b: v[1:]}
	for len(d.b) > 0 {
		e := d.bytes()
		if d.err != nil {
			return auditBlock{}, fmt.Errorf("%w: audit %x is truncated", ErrCorrupt, k)
		}
		blk.entries = append(blk.entries, e)
	}
	return blk, nil
}

// entry decodes the i-th entry.
func (blk *auditBlock) entry(i int) (AuditEntry, error) {
	seq := blk.first + uint64(i)
	if blk.legacy {
		var e AuditEntry
		if err := json.Unmarshal(blk.entries[0], &e); err != nil {
			return AuditEntry{}, fmt.Errorf("%w: audit entry %d", ErrCorrupt, seq)
		}
		e.Seq = seq
		return e, nil
	}
	return decodeAuditEntry(blk.entries[i], seq)
}

// appendBlock encodes entries as a block value.
func appendBlock(v []byte, entries [][]byte) []byte {
	v = append(v, auditBlockFormat)
	for _, e := range entries {
		v = binary.AppendUvarint(v, uint64(len(e)))
		v = append(v, e...)
	}
	return v
}

// flushAudit gives the audit entries of the batches in a group their
// sequences, in commit order, and writes them into base as one block;
// refusal rows (NewRefusalBatch) go in a block of their own after it,
// listed under prefixRefusals.
func (db *DB) flushAudit(base *pebble.Batch, group []*Batch) {
	db.flushAuditBlock(base, group, false)
	db.flushAuditBlock(base, group, true)
}

func (db *DB) flushAuditBlock(base *pebble.Batch, group []*Batch, refusals bool) {
	n, size := 0, 1
	for _, b := range group {
		if b.refusals == refusals {
			n += b.audits
			size += len(b.audit)
		}
	}
	if n == 0 {
		return
	}
	first := db.auditSeq.Add(uint64(n)) - uint64(n) + 1
	// Encoded in place in the batch, as PutEvent does: no block-sized
	// buffer per group commit that Set would only copy again.
	k := auditKey(first)
	op := base.SetDeferred(len(k), size)
	copy(op.Key, k)
	v := append(op.Value[:0], auditBlockFormat)
	for _, b := range group {
		if b.refusals == refusals {
			v = append(v, b.audit...)
		}
	}
	op.Finish()
	if refusals {
		base.Set(refusalsKey(first), nil, nil)
	}
}

// ListAudit returns audit entries with seq < before (0: from the newest),
// newest first, that match, at most limit of them. next is the cursor for
// the following page, 0 at the end.
func (db *DB) ListAudit(before uint64, limit int, match func(*AuditEntry) bool) (out []AuditEntry, next uint64, err error) {
	lo := []byte{prefixAudit}
	hi := prefixEnd(lo)
	if before > 0 {
		hi = auditKey(before) // the block holding before-1 starts below it
	}
	it, err := db.newIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		blk, err := parseAuditBlock(it.Key(), it.Value())
		if err != nil {
			return nil, 0, err
		}
		for i := len(blk.entries) - 1; i >= 0; i-- {
			if before > 0 && blk.first+uint64(i) >= before {
				continue
			}
			e, err := blk.entry(i)
			if err != nil {
				return nil, 0, err
			}
			if match != nil && !match(&e) {
				continue
			}
			if len(out) == limit {
				return out, out[len(out)-1].Seq, nil
			}
			out = append(out, e)
		}
	}
	return out, 0, it.Error()
}
