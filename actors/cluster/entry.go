package cluster

import (
	"encoding/binary"
	"errors"
	"time"
)

// Entry kinds. Never redefine a byte; add a new one.
const (
	kindIngest   = 1 // a received webhook: event, dedupe key and fan-out
	kindTakeover = 2 // a new owner's first entry, carrying its raft term
	kindWrite    = 3 // an owner's writes, stamped with its takeover term
	kindAckOut   = 4 // a destination's owner acknowledges outbox entries of this partition
	kindIngestTo = 5 // kindIngest naming the destinations that get an inbox entry
	kindInbox    = 6 // events for ordered destinations of this partition, in the order they are acknowledged
)

// Result values of a partition entry (statemachine.Result.Value).
const (
	// ResultAccepted: applied. For an ingest, Data is the new event's
	// sequence (8 bytes, big-endian).
	ResultAccepted = 1
	// ResultDuplicate: an ingest whose key is inside the dedupe window;
	// Data is the original event's sequence.
	ResultDuplicate = 2
	// ResultFenced: a takeover or write from an owner whose term is no
	// longer the partition's; nothing was applied.
	ResultFenced = 3
	// ResultBad: an entry that does not decode or writes outside the
	// partition; nothing was applied. A bug in the proposer, never input
	// from outside the cluster.
	ResultBad = 4
)

var errBadEntry = errors.New("cluster: malformed entry")

// entry is one decoded partition entry.
type entry struct {
	kind   byte
	term   uint64        // takeover and write
	node   uint64        // takeover and write: the owner's node id
	window time.Duration // ingest: the dedupe window of the proposer
	body   []byte        // ingest: the event record; write: encoded ops
	// inboxed: ingest, indexes into the event's destinations that the
	// proposer sends an inbox entry (ordered destinations).
	inboxed []int
	inbox   []inboxRef // inbox
}

// inboxRef names one event for one destination's inbox.
type inboxRef struct {
	dest string
	part uint16
	seq  uint64
}

// maxInboxRefs bounds one inbox entry before anything is allocated.
const maxInboxRefs = 4096

// encodeIngestTo is an ingest whose destinations at inboxed (indexes into
// the event's destinations) get inbox entries from the proposer.
func encodeIngestTo(window time.Duration, inboxed []int, event []byte) []byte {
	if len(inboxed) == 0 {
		return encodeIngest(window, event)
	}
	b := make([]byte, 0, 2+binary.MaxVarintLen64*(2+len(inboxed))+len(event))
	b = append(b, kindIngestTo)
	b = binary.AppendUvarint(b, uint64(window))
	b = binary.AppendUvarint(b, uint64(len(inboxed)))
	for _, i := range inboxed {
		b = binary.AppendUvarint(b, uint64(i))
	}
	return append(b, event...)
}

func encodeInbox(refs []inboxRef) []byte {
	b := []byte{kindInbox}
	b = binary.AppendUvarint(b, uint64(len(refs)))
	for _, r := range refs {
		b = binary.AppendUvarint(b, uint64(len(r.dest)))
		b = append(b, r.dest...)
		b = binary.AppendUvarint(b, uint64(r.part))
		b = binary.AppendUvarint(b, r.seq)
	}
	return b
}

func encodeIngest(window time.Duration, event []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(event))
	b = append(b, kindIngest)
	b = binary.AppendUvarint(b, uint64(window))
	return append(b, event...)
}

func encodeTakeover(term, node uint64) []byte {
	b := []byte{kindTakeover}
	b = binary.AppendUvarint(b, term)
	return binary.AppendUvarint(b, node)
}

// encodeAck carries outbox deletions (wal.Batch.EncodeOps of DeleteOutbox
// calls only). It is not fenced by this partition's owner: the writer owns
// the destination, whose queue lives in another partition; it acks only
// after its own fenced enqueue there was applied, and deleting an outbox
// entry twice is harmless.
func encodeAck(ops []byte) []byte { return append([]byte{kindAckOut}, ops...) }

func encodeWrite(term, node uint64, ops []byte) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(ops))
	b = append(b, kindWrite)
	b = binary.AppendUvarint(b, term)
	b = binary.AppendUvarint(b, node)
	return append(b, ops...)
}

// decodeEntry never panics; the body aliases b.
func decodeEntry(b []byte) (entry, error) {
	if len(b) == 0 {
		return entry{}, errBadEntry
	}
	e := entry{kind: b[0]}
	b = b[1:]
	uv := func() uint64 {
		if b == nil {
			return 0
		}
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	switch e.kind {
	case kindIngest:
		w := uv()
		if b == nil || w > uint64(1<<62) {
			return entry{}, errBadEntry
		}
		e.window, e.body = time.Duration(w), b
	case kindTakeover:
		e.term, e.node = uv(), uv()
		if b == nil || len(b) != 0 {
			return entry{}, errBadEntry
		}
	case kindWrite:
		e.term, e.node = uv(), uv()
		if b == nil {
			return entry{}, errBadEntry
		}
		e.body = b
	case kindAckOut:
		e.body = b
	case kindIngestTo:
		w := uv()
		n := uv()
		if b == nil || w > uint64(1<<62) || n == 0 || n > maxInboxRefs {
			return entry{}, errBadEntry
		}
		e.window = time.Duration(w)
		e.inboxed = make([]int, 0, n)
		for range n {
			i := uv()
			if b == nil || i >= maxInboxRefs {
				return entry{}, errBadEntry
			}
			e.inboxed = append(e.inboxed, int(i))
		}
		e.body = b
	case kindInbox:
		n := uv()
		if b == nil || n == 0 || n > maxInboxRefs {
			return entry{}, errBadEntry
		}
		e.inbox = make([]inboxRef, 0, n)
		for range n {
			l := uv()
			if b == nil || l == 0 || l > uint64(len(b)) {
				return entry{}, errBadEntry
			}
			dest := string(b[:l])
			b = b[l:]
			part, seq := uv(), uv()
			if b == nil || part > 0xffff {
				return entry{}, errBadEntry
			}
			e.inbox = append(e.inbox, inboxRef{dest: dest, part: uint16(part), seq: seq})
		}
		if len(b) != 0 {
			return entry{}, errBadEntry
		}
	default:
		return entry{}, errBadEntry
	}
	return e, nil
}
