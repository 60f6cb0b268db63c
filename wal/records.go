package wal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Event is one webhook as it was received, kept byte-exact.
type Event struct {
	Partition  uint16
	Seq        uint64
	Source     string
	IdemKey    string
	EventType  string
	ReceivedAt time.Time
	// Headers are the request's headers in the order they arrived.
	Headers      [][2]string
	Body         []byte
	Destinations []string
}

// ID is the event's public id: "evt_" followed by the partition and the
// sequence in hex, so an id alone finds the event's key.
func (e *Event) ID() string { return EventID(e.Partition, e.Seq) }

// EventID formats an event id (model.EventID).
func EventID(part uint16, seq uint64) string { return model.EventID(part, seq) }

// ParseEventID is the inverse of EventID; a malformed id is ErrNotFound.
func ParseEventID(id string) (part uint16, seq uint64, err error) {
	part, seq, ok := model.ParseEventID(id)
	if !ok {
		return 0, 0, fmt.Errorf("%w: malformed event id %q", ErrNotFound, id)
	}
	return part, seq, nil
}

const eventFormat = 1

// appendEvent encodes e: a format byte, then uvarint-prefixed fields.
func appendEvent(b []byte, e *Event) []byte {
	b = append(b, eventFormat)
	b = binary.AppendVarint(b, e.ReceivedAt.UnixNano())
	b = appendString(b, e.Source)
	b = appendString(b, e.IdemKey)
	b = appendString(b, e.EventType)
	b = binary.AppendUvarint(b, uint64(len(e.Headers)))
	for _, h := range e.Headers {
		b = appendString(b, h[0])
		b = appendString(b, h[1])
	}
	b = binary.AppendUvarint(b, uint64(len(e.Destinations)))
	for _, d := range e.Destinations {
		b = appendString(b, d)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	return append(b, e.Body...)
}

// eventSize is len(appendEvent(nil, e)).
func eventSize(e *Event) int {
	n := 1 + varintLen(e.ReceivedAt.UnixNano()) + stringSize(e.Source) + stringSize(e.IdemKey) + stringSize(e.EventType)
	n += uvarintLen(uint64(len(e.Headers)))
	for _, h := range e.Headers {
		n += stringSize(h[0]) + stringSize(h[1])
	}
	n += uvarintLen(uint64(len(e.Destinations)))
	for _, d := range e.Destinations {
		n += stringSize(d)
	}
	return n + uvarintLen(uint64(len(e.Body))) + len(e.Body)
}

func stringSize(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// count reads a list length, bounded by what the remaining bytes could hold.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return 0
	}
	return int(n)
}

// decodeEvent decodes what appendEvent wrote. The body is copied, so the
// result does not alias b.
func decodeEvent(part uint16, seq uint64, b []byte) (*Event, error) {
	return decodeEventFields(part, seq, b, true)
}

// decodeEventHead decodes an event without its headers and body: what a
// list's filter reads of every event it looks at.
func decodeEventHead(part uint16, seq uint64, b []byte) (*Event, error) {
	return decodeEventFields(part, seq, b, false)
}

func decodeEventFields(part uint16, seq uint64, b []byte, full bool) (*Event, error) {
	if len(b) == 0 || b[0] != eventFormat {
		return nil, fmt.Errorf("%w: event %s has unknown format", ErrCorrupt, EventID(part, seq))
	}
	d := decoder{b: b[1:]}
	e := &Event{Partition: part, Seq: seq}
	e.ReceivedAt = time.Unix(0, d.varint()).UTC()
	e.Source = d.string()
	e.IdemKey = d.string()
	e.EventType = d.string()
	if n := d.count(); full && n > 0 {
		e.Headers = make([][2]string, n)
		for i := range e.Headers {
			e.Headers[i] = [2]string{d.string(), d.string()}
		}
	} else {
		for range 2 * n {
			d.bytes()
		}
	}
	if n := d.count(); n > 0 {
		e.Destinations = make([]string, n)
		for i := range e.Destinations {
			e.Destinations[i] = d.string()
		}
	}
	if full {
		e.Body = append([]byte{}, d.bytes()...)
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: event %s is truncated", ErrCorrupt, EventID(part, seq))
	}
	return e, nil
}

// The delivery record and its statuses live in model, the leaf every layer
// shares; these names keep the storage API reading as it did.
type (
	// Attempt is model.Attempt.
	Attempt = model.Attempt
	// Delivery is model.Delivery.
	Delivery = model.Delivery
)

// Delivery statuses.
const (
	StatusPending   = model.StatusPending
	StatusDelivered = model.StatusDelivered
	StatusDead      = model.StatusDead
)

// QueueEntry is one pending delivery in a destination's queue.
type QueueEntry struct {
	QSeq      uint64
	EventPart uint16
	EventSeq  uint64
}

func appendQueueValue(b []byte, part uint16, seq uint64) []byte {
	b = binary.BigEndian.AppendUint16(b, part)
	return binary.BigEndian.AppendUint64(b, seq)
}

// Delivery record layout. Records written before it are JSON (a value
// starting with '{') and read as before.
//
//	deliveryFormat | word destination | word event id | word status |
//	uvarint qseq | uvarint attempts base | time next attempt |
//	word replay id | time updated | uvarint n | n * attempt
//	attempt: uvarint n | time at | float64 duration ms (8, big-endian) |
//	         uvarint status code | word response | word error | word replay id
//	time:    uvarint 0 for the zero time, else uvarint 1 and varint unix ns
const deliveryFormat = 0x01

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	return binary.AppendVarint(b, unixNanos(t))
}

func (d *decoder) time() time.Time {
	switch d.uvarint() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.varint()).UTC()
	}
	d.err = ErrCorrupt
	return time.Time{}
}

func appendDelivery(b []byte, r *Delivery) []byte {
	b = append(b, deliveryFormat)
	b = appendWord(b, r.Destination)
	b = appendWord(b, r.EventID)
	b = appendWord(b, r.Status)
	b = binary.AppendUvarint(b, r.QSeq)
	b = binary.AppendUvarint(b, uint64(max(r.AttemptsBase, 0)))
	b = appendTime(b, r.NextAt)
	b = appendWord(b, r.ReplayID)
	b = appendTime(b, r.UpdatedAt)
	b = binary.AppendUvarint(b, uint64(len(r.Attempts)))
	for i := range r.Attempts {
		a := &r.Attempts[i]
		b = binary.AppendUvarint(b, uint64(max(a.N, 0)))
		b = appendTime(b, a.At)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(a.DurationMS))
		b = binary.AppendUvarint(b, uint64(max(a.StatusCode, 0)))
		b = appendWord(b, a.Response)
		b = appendWord(b, a.Error)
		b = appendWord(b, a.ReplayID)
	}
	return b
}

// decodeDelivery reads a delivery record in either layout; it never panics.
func decodeDelivery(v []byte) (Delivery, error) {
	var r Delivery
	if len(v) > 0 && v[0] == '{' {
		if err := json.Unmarshal(v, &r); err != nil {
			return Delivery{}, ErrCorrupt
		}
		return r, nil
	}
	if len(v) == 0 || v[0] != deliveryFormat {
		return Delivery{}, ErrCorrupt
	}
	d := decoder{b: v[1:]}
	r.Destination = d.word()
	r.EventID = d.word()
	r.Status = d.word()
	r.QSeq = d.uvarint()
	r.AttemptsBase = int(d.uvarint() & math.MaxInt32)
	r.NextAt = d.time()
	r.ReplayID = d.word()
	r.UpdatedAt = d.time()
	if n := d.count(); d.err == nil {
		r.Attempts = make([]Attempt, n) // never nil: the API lists [] as JSON did
		for i := range r.Attempts {
			a := &r.Attempts[i]
			a.N = int(d.uvarint() & math.MaxInt32)
			a.At = d.time()
			if len(d.b) < 8 {
				d.err = ErrCorrupt
				break
			}
			a.DurationMS = math.Float64frombits(binary.BigEndian.Uint64(d.b))
			d.b = d.b[8:]
			a.StatusCode = int(d.uvarint() & math.MaxInt32)
			a.Response = d.word()
			a.Error = d.word()
			a.ReplayID = d.word()
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return Delivery{}, ErrCorrupt
	}
	return r, nil
}
