package wal

import (
	"encoding/binary"
	"hash/fnv"
)

// Key prefixes. Never redefine a byte; add a new one.
const (
	prefixMeta      = 'm'
	prefixConfig    = 'c'
	prefixAudit     = 'u'
	prefixPartition = 'p'
	// prefixRefusals lists the audit blocks that hold only refusal rows
	// (v <first seq:8> -> nothing), for their shorter retention.
	prefixRefusals = 'v'

	subEvent    = 'e'
	subDedupe   = 'k'
	subOutbox   = 'o'
	subQueue    = 'q'
	subDelivery = 'r'
	subDead     = 'x'
	// subPending indexes a destination's queue by event sequence;
	// subNoDest lists the events no destination was routed (index.go).
	subPending = 'w'
	subNoDest  = 'n'
)

// Config kinds under prefixConfig.
const (
	KindSource      = 's'
	KindDestination = 'd'
	KindAgent       = 'a'
	KindForward     = 'f'
	KindToken       = 't'
	KindReplay      = 'y'
	// KindMember holds a cluster's member records (its metadata shard).
	KindMember = 'm'
	// KindProposal holds the metadata shard's recent entries by id with
	// the result each got, so a proposal retried after a timeout is
	// applied once (its second copy answers the first one's result).
	KindProposal = 'p'
	// KindRollup holds the admin dashboard's per-minute counts.
	KindRollup = 'n'
)

// Partition returns the partition of a string key (a source and idempotency
// key, or a destination slug) among n partitions.
func Partition(n int, parts ...string) uint16 {
	h := fnv.New64a()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return uint16(h.Sum64() % uint64(n))
}

func partKey(part uint16, sub byte, extra int) []byte {
	b := make([]byte, 4, 4+extra)
	b[0] = prefixPartition
	binary.BigEndian.PutUint16(b[1:3], part)
	b[3] = sub
	return b
}

func eventKey(part uint16, seq uint64) []byte {
	return appendEventKey(make([]byte, 0, 12), part, seq)
}

func appendEventKey(b []byte, part uint16, seq uint64) []byte {
	b = append(b, prefixPartition)
	b = binary.BigEndian.AppendUint16(b, part)
	b = append(b, subEvent)
	return binary.BigEndian.AppendUint64(b, seq)
}

func dedupeKey(part uint16, source, key string) []byte {
	b := partKey(part, subDedupe, len(source)+1+len(key))
	b = append(b, source...)
	b = append(b, 0)
	return append(b, key...)
}

func noDestKey(part uint16, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(partKey(part, subNoDest, 8), seq)
}

func outboxKey(part uint16, seq uint64, dest string) []byte {
	b := binary.BigEndian.AppendUint64(partKey(part, subOutbox, 8+len(dest)), seq)
	return append(b, dest...)
}

// destKey builds p <part> <sub> <dest> 0 <n:8>.
func destKey(part uint16, sub byte, dest string, n uint64) []byte {
	b := destPrefix(part, sub, dest)
	return binary.BigEndian.AppendUint64(b, n)
}

func destPrefix(part uint16, sub byte, dest string) []byte {
	b := partKey(part, sub, len(dest)+9)
	b = append(b, dest...)
	return append(b, 0)
}

func auditKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixAudit}, seq)
}

func refusalsKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixRefusals}, seq)
}

func configKey(kind byte, slug string) []byte {
	b := make([]byte, 0, 2+len(slug))
	b = append(b, prefixConfig, kind)
	return append(b, slug...)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
