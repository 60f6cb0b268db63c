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
	default:
		return entry{}, errBadEntry
	}
	return e, nil
}
