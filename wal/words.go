package wal

import "encoding/binary"

// Strings in the binary records (audit entries, delivery records) are
// words: uvarint x; x odd: words[x>>1], one byte for the strings most
// records repeat; x even: x>>1 bytes of the string follow.
//
// words is part of the format: never change or reorder one, add at the end
// (and to wordIndex).
var words = [...]string{
	"event", "event.received", "event.duplicate", "source", "idempotency_key", "event_type",
	"delivery.delivered", "delivery.attempt_failed", "delivery.dead_lettered", "destination",
	"attempt", "status_code", "error", "replay", "event.signature_rejected", "reason",
	"pending", "delivered", "dead",
}

// wordIndex is s's index in words, -1 for any other string. A switch, not
// a map: it runs for every string of every record written.
func wordIndex(s string) int {
	switch s {
	case "event":
		return 0
	case "event.received":
		return 1
	case "event.duplicate":
		return 2
	case "source":
		return 3
	case "idempotency_key":
		return 4
	case "event_type":
		return 5
	case "delivery.delivered":
		return 6
	case "delivery.attempt_failed":
		return 7
	case "delivery.dead_lettered":
		return 8
	case "destination":
		return 9
	case "attempt":
		return 10
	case "status_code":
		return 11
	case "error":
		return 12
	case "replay":
		return 13
	case "event.signature_rejected":
		return 14
	case "reason":
		return 15
	case "pending":
		return 16
	case "delivered":
		return 17
	case "dead":
		return 18
	}
	return -1
}

func appendWord(b []byte, s string) []byte {
	if i := wordIndex(s); i >= 0 {
		return binary.AppendUvarint(b, uint64(i)<<1|1)
	}
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

func (d *decoder) word() string {
	x := d.uvarint()
	if d.err != nil {
		return ""
	}
	if x&1 == 1 {
		if x>>1 >= uint64(len(words)) {
			d.err = ErrCorrupt
			return ""
		}
		return words[x>>1]
	}
	n := x >> 1
	if n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
