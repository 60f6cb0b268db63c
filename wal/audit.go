package wal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	"github.com/webhookops/webhookops/wal/model"
)

// AuditEntry is one state transition.
type AuditEntry = model.AuditEntry

// Audit appends an audit entry to the batch; it becomes durable with the
// state change it records.
func (b *Batch) Audit(e AuditEntry) {
	e.Seq = b.db.auditSeq.Add(1)
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	b.buf = appendAuditJSON(b.buf[:0], &e)
	b.b.Set(auditKey(e.Seq), b.buf, nil)
}

// appendAuditJSON writes e as encoding/json would, without reflection: an
// audit entry is written for every event received and delivered.
func appendAuditJSON(b []byte, e *AuditEntry) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"at":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","action":`...)
	b = appendJSONString(b, e.Action)
	b = append(b, `,"object_type":`...)
	b = appendJSONString(b, e.ObjectType)
	b = append(b, `,"object_id":`...)
	b = appendJSONString(b, e.ObjectID)
	if e.Actor != "" {
		b = append(b, `,"actor":`...)
		b = appendJSONString(b, e.Actor)
	}
	if e.ReplayID != "" {
		b = append(b, `,"replay_id":`...)
		b = appendJSONString(b, e.ReplayID)
	}
	if len(e.Detail) > 0 {
		b = append(b, `,"detail":{`...)
		for i, k := range slices.Sorted(maps.Keys(e.Detail)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.Detail[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString quotes s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
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
	it, err := db.newIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
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
