package wal

// The dedupe filter.
//
// Almost every idempotency key that reaches ingest has never been seen:
// looking each one up in Pebble walks the memtable's skiplist (which has
// no bloom filter) and the filter blocks of every level, and that read was
// an eighth of the CPU of a node under full ingest load. The filter is an
// in-memory summary of every dedupe key on disk, kept per partition, that
// answers "certainly not there" for most new keys without touching Pebble.
// It never changes an answer, only how it is found: "maybe" still reads
// Pebble, which stays authoritative.
//
//   - Every write of a dedupe key adds it before the write is committed
//     (PutDedupe, replicated ops), so the filter is never behind the disk.
//     A key added whose write then fails is only a false "maybe".
//   - At Open a background scan reads each partition's dedupe keys; until a
//     partition's scan is done its lookups read Pebble. From the moment a
//     scan is asked for, every key written goes into the filter it fills
//     too, so a key committed after the scan's iterator opened is not lost.
//   - A restored partition (RestorePartition) drops its filter before its
//     new keys are applied and is scanned again after; a scan that was
//     running then does not publish what it read.
//   - Each partition keeps a chain of bloom filters in the order they were
//     filled, each with the newest receive time it holds. A lookup that only
//     cares about keys received after some time (GetDedupeAfter: the dedupe
//     window) drops the filters whose keys are all older, and remembers
//     that it did (the horizon): a later lookup reaching further back than
//     the horizon reads Pebble. So the filter holds about one dedupe
//     window of keys, not the whole retention.
//   - Config.DedupeFilterBytes bounds the memory of all partitions'
//     filters; past it the oldest filter of the partition that needs room
//     is dropped the same way (its lookups then read Pebble).

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Bloom filter shape: 10 bits and 7 probes per key give about 1% false
// "maybe" answers. Filters start small and double up to bloomMaxKeys.
const (
	bloomBitsPerKey = 10
	bloomProbes     = 7
	bloomMinKeys    = 1 << 10
	bloomMaxKeys    = 1 << 16
	// filterScanChunk is how many keys a scan reads under one hold of the
	// store, so Close never waits long for it.
	filterScanChunk = 4096
)

type keyBloom struct {
	words []uint64
	nbits uint64
	keys  int
	cap   int
	maxAt int64 // newest receive time added, unix nanoseconds
}

func newBloom(capacity int) *keyBloom {
	nwords := (capacity*bloomBitsPerKey + 63) / 64
	return &keyBloom{words: make([]uint64, nwords), nbits: uint64(nwords) * 64, cap: capacity, maxAt: math.MinInt64}
}

func (b *keyBloom) bytes() int64 { return int64(len(b.words)) * 8 }

// probe is the i-th bit of h: double hashing, reduced to nbits by a
// multiply and shift.
func (b *keyBloom) probe(h uint64, i uint32) uint64 {
	x := uint32(h) + i*(uint32(h>>32)|1)
	return (uint64(x) * b.nbits) >> 32
}

func (b *keyBloom) add(h uint64, at int64) {
	for i := uint32(0); i < bloomProbes; i++ {
		bit := b.probe(h, i)
		b.words[bit/64] |= 1 << (bit % 64)
	}
	b.keys++
	b.maxAt = max(b.maxAt, at)
}

func (b *keyBloom) mayContain(h uint64) bool {
	for i := uint32(0); i < bloomProbes; i++ {
		bit := b.probe(h, i)
		if b.words[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// bloomChain is one partition's filters, oldest first. horizon: keys
// received at or before it may have been dropped.
type bloomChain struct {
	blooms  []*keyBloom
	horizon int64
}

func newChain() *bloomChain { return &bloomChain{horizon: math.MinInt64} }

// dedupeFilter is the store's filter of dedupe keys, one chain per
// partition.
type dedupeFilter struct {
	seed   maphash.Seed
	budget int64 // bytes for every partition's blooms together
	// maxKeys is the largest filter's capacity (bloomMaxKeys but in tests).
	maxKeys int
	used    atomic.Int64 // bytes held now
	parts   []partFilter
	// rescan takes partitions to scan; pending marks those queued.
	rescan chan uint16
}

type partFilter struct {
	mu sync.Mutex // guards the fields below
	// live answers lookups; nil until the partition's first scan is done.
	live *bloomChain
	// building is the filter the next or current scan fills; every add
	// goes to it as well, from the moment a scan is asked for, so a key
	// committed after the scan's iterator was opened is not missed.
	building *bloomChain
	pending  bool // queued for a scan
}

func newDedupeFilter(partitions int, budget int64, maxKeys int) *dedupeFilter {
	f := &dedupeFilter{seed: maphash.MakeSeed(), budget: budget, maxKeys: maxKeys,
		parts: make([]partFilter, partitions), rescan: make(chan uint16, partitions)}
	for p := range f.parts {
		f.queueRescan(uint16(p))
	}
	return f
}

// hash of a dedupe key's identity: the part of the key after the
// partition prefix (source, 0, idempotency key).
func (f *dedupeFilter) hash(k []byte) uint64 { return maphash.Bytes(f.seed, k[4:]) }

// add records that dedupe key k (received at, unix nanoseconds) is on
// disk or about to be.
func (f *dedupeFilter) add(part uint16, k []byte, at int64) {
	if f == nil || int(part) >= len(f.parts) {
		return
	}
	h := f.hash(k)
	pf := &f.parts[part]
	pf.mu.Lock()
	if pf.live != nil {
		f.addTo(pf.live, h, at)
	}
	if pf.building != nil {
		f.addTo(pf.building, h, at)
	}
	pf.mu.Unlock()
}

func (f *dedupeFilter) addTo(c *bloomChain, h uint64, at int64) {
	n := len(c.blooms)
	if n == 0 || c.blooms[n-1].keys >= c.blooms[n-1].cap {
		capacity := min(bloomMinKeys, f.maxKeys)
		if n > 0 {
			capacity = min(2*c.blooms[n-1].cap, f.maxKeys)
		}
		b := newBloom(capacity)
		for f.used.Load()+b.bytes() > f.budget && len(c.blooms) > 0 {
			f.drop(c)
		}
		if f.used.Load()+b.bytes() <= f.budget {
			f.used.Add(b.bytes())
			c.blooms = append(c.blooms, b)
		} else if len(c.blooms) == 0 {
			// Not even one filter fits: everything reads Pebble.
			c.horizon = math.MaxInt64
			return
		}
	}
	c.blooms[len(c.blooms)-1].add(h, at)
}

// drop forgets c's oldest filter and moves the horizon past its keys.
func (f *dedupeFilter) drop(c *bloomChain) {
	b := c.blooms[0]
	c.blooms[0] = nil
	c.blooms = c.blooms[1:]
	c.horizon = max(c.horizon, b.maxAt)
	f.used.Add(-b.bytes())
}

// release gives back a chain's memory.
func (f *dedupeFilter) release(c *bloomChain) {
	for c != nil && len(c.blooms) > 0 {
		f.drop(c)
	}
}

// mayContain reports whether dedupe key k, received after `after` (unix
// nanoseconds), may be on disk. False is certain.
func (f *dedupeFilter) mayContain(part uint16, k []byte, after int64) bool {
	if f == nil || int(part) >= len(f.parts) {
		return true
	}
	h := f.hash(k)
	pf := &f.parts[part]
	pf.mu.Lock()
	defer pf.mu.Unlock()
	c := pf.live
	if c == nil {
		return true
	}
	// Filters whose keys are all too old for this lookup are no use to
	// any lookup as recent: drop them (never the one being filled).
	for len(c.blooms) > 1 && c.blooms[0].maxAt <= after {
		f.drop(c)
	}
	if after < c.horizon {
		return true
	}
	for i := len(c.blooms) - 1; i >= 0; i-- {
		b := c.blooms[i]
		if b.maxAt <= after {
			continue // holds only keys too old (an older one may not)
		}
		if b.mayContain(h) {
			return true
		}
	}
	return false
}

// invalidate drops a partition's filter (its keys are about to be
// replaced): lookups read Pebble until the scan that queueRescan asks for,
// after the new keys are in, has run. A scan running now does not publish.
func (f *dedupeFilter) invalidate(part uint16) {
	if f == nil || int(part) >= len(f.parts) {
		return
	}
	pf := &f.parts[part]
	pf.mu.Lock()
	f.release(pf.live)
	f.release(pf.building)
	pf.live, pf.building = nil, newChain()
	pf.mu.Unlock()
}

// queueRescan asks the filter loop to scan part (again).
func (f *dedupeFilter) queueRescan(part uint16) {
	if f == nil || int(part) >= len(f.parts) {
		return
	}
	pf := &f.parts[part]
	pf.mu.Lock()
	if pf.building == nil {
		pf.building = newChain()
	}
	queue := !pf.pending
	pf.pending = true
	pf.mu.Unlock()
	if queue {
		f.rescan <- part // never blocks: at most one entry per partition
	}
}

// filterLoop scans the partitions queued for it until the store closes.
func (db *DB) filterLoop() {
	defer db.wg.Done()
	for {
		select {
		case <-db.done:
			return
		case part := <-db.filter.rescan:
			if err := db.scanFilter(part); err != nil && err != ErrClosed {
				db.log.Warn("dedupe filter: scan failed; this partition's lookups read the store", "partition", part, "err", err)
			}
		}
	}
}

// scanFilter fills part's building filter from its dedupe keys on disk
// and makes it live, unless the partition was replaced or another scan was
// asked for meanwhile.
func (db *DB) scanFilter(part uint16) error {
	f := db.filter
	pf := &f.parts[part]
	pf.mu.Lock()
	pf.pending = false
	if pf.building == nil {
		pf.building = newChain()
	}
	c := pf.building
	pf.mu.Unlock()
	done := false
	defer func() {
		pf.mu.Lock()
		if pf.building == c && !pf.pending {
			if done {
				f.release(pf.live)
				pf.live = c
			} else {
				f.release(c)
			}
			pf.building = nil
		}
		pf.mu.Unlock()
	}()
	lo := partKey(part, subDedupe, 0)
	hi := prefixEnd(lo)
	for {
		next, err := db.scanFilterChunk(part, c, lo, hi)
		if err != nil {
			return err
		}
		if next == nil {
			done = true
			return nil
		}
		lo = next
	}
}

// scanFilterChunk adds up to filterScanChunk keys from [lo, hi) to c while
// it is still part's building filter, and returns where to go on (nil at
// the end).
func (db *DB) scanFilterChunk(part uint16, c *bloomChain, lo, hi []byte) ([]byte, error) {
	select {
	case <-db.done:
		return nil, ErrClosed
	default:
	}
	it, err := db.newIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	f := db.filter
	pf := &f.parts[part]
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n == filterScanChunk {
			return append([]byte(nil), it.Key()...), nil
		}
		n++
		at := int64(math.MaxInt64) // unreadable: never dropped as too old
		if v := it.Value(); len(v) == 16 {
			at = int64(binary.BigEndian.Uint64(v[8:]))
		}
		h := f.hash(it.Key())
		pf.mu.Lock()
		current := pf.building == c
		if current {
			f.addTo(c, h, at)
		}
		pf.mu.Unlock()
		if !current {
			return nil, nil // replaced: the deferred check does not publish
		}
	}
	return nil, it.Error()
}
