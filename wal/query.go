package wal

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Event queries.
//
// An event list is newest first, a page at a time, the last sequence of a
// page being the cursor of the next. Reading events newest first until a
// page is full is cheap while most events match; for a filter few events
// match it reads the whole store. So a query names where its candidates
// come from (Candidates): every event, or an index that holds only events
// that can match, newest first in every case. Its Match still decides on
// each candidate: an index narrows the list, it never answers alone, so
// the result is the same whichever candidates were read.

// Candidates is where a query's candidate events come from.
type Candidates uint8

const (
	// AllEvents reads every stored event.
	AllEvents Candidates = iota
	// PendingAt reads Dest's pending index, its inbox (a cluster's) and
	// the outbox entries for Dest; every destination's when Dest is "".
	PendingAt
	// DeadAt reads Dest's dead-letter index; every destination's when Dest
	// is "".
	DeadAt
	// RoutedAt reads every event routed to Dest: its delivery records, its
	// pending index, its inbox and the outbox entries for it. Dest is
	// required.
	RoutedAt
	// NoDestinations reads the events that were routed nowhere.
	NoDestinations
	// WithKey reads the event that (Source, IdemKey) names in the dedupe
	// keys; every source's when Source is "".
	WithKey
)

// RandomRead is what a candidate read on its own costs of a query's
// Budget, against 1 for one read in a run of events.
const RandomRead = 10

// Index names a set of events: candidates from an index, or (AllEvents)
// every event.
type Index struct {
	From Candidates
	Dest string // PendingAt, DeadAt, RoutedAt
}

// EventQuery is a query of QueryEvents and CountQuery.
type EventQuery struct {
	From            Candidates
	Dest            string // PendingAt, DeadAt, RoutedAt
	Source, IdemKey string // WithKey
	// Minus leaves out the candidates any of these sets holds (dead
	// anywhere but pending nowhere, say).
	Minus []Index
	// Before bounds the sequences: only events with Seq < Before (a
	// previous page's next cursor); 0 is no bound.
	Before uint64
	// Budget bounds a page's work (0: no bound): each candidate looked
	// at costs 1, or RandomRead when it is an event read on its own
	// (from an index rather than in a run of events). Once it is spent
	// the page ends, short or even empty, its next cursor below the last
	// candidate looked at.
	Budget int
	// Deadline ends a page as a spent Budget does, once it has passed
	// (zero: none): a page answers in bounded time however loaded the
	// machine and cold the cache.
	Deadline time.Time
	// Match decides on each candidate, newest first, seeing it without
	// its headers and body; stop ends the list there (the candidate is
	// not taken). nil takes every candidate.
	Match func(*Event) (ok, stop bool)
}

// QueryEvents answers up to limit events of q, newest first, and the cursor
// of the next page (0 at the end). Sequences are unique and never reused,
// so a cursor never skips or repeats an event while new ones arrive.
func (db *DB) QueryEvents(q EventQuery, limit int) (out []*Event, next uint64, err error) {
	m := meter{q: &q}
	err = db.walk(q, func(s *stream) (bool, error) {
		if m.done() {
			next = s.seq + 1 // s is the first candidate not looked at
			return false, nil
		}
		m.charge(s)
		e, err := db.candidate(s, q.Match)
		if err != nil || e == nil {
			return err == nil, err
		}
		if len(out) == limit {
			next = out[len(out)-1].Seq
			return false, nil
		}
		out = append(out, e)
		return true, nil
	})
	if errors.Is(err, errStopScan) {
		return out, 0, nil
	}
	return out, next, err
}

// Count is what CountQuery counted.
type Count struct {
	N int
	// More: the count stopped before the end, at max, the Budget or the
	// Deadline; N is a lower bound.
	More bool
	// Looked is how many candidates it looked at.
	Looked int
}

// CountQuery counts q's events, looking at no more than max candidates
// (and within q's Budget and Deadline). Without a Match it reads the
// indexes alone, never an event.
func (db *DB) CountQuery(q EventQuery, max int) (Count, error) {
	if q.From == AllEvents && q.Match == nil && len(q.Minus) == 0 && q.Before == 0 {
		n, more, err := db.CountEvents(max) // any max events will do: each partition forwards
		return Count{N: n, More: more, Looked: n}, err
	}
	var c Count
	m := meter{q: &q}
	err := db.walk(q, func(s *stream) (bool, error) {
		if c.Looked == max || m.done() {
			c.More = true
			return false, nil
		}
		c.Looked++
		if q.Match == nil {
			m.chargeKey()
			c.N++
			return true, nil
		}
		m.charge(s)
		e, err := db.candidate(s, q.Match)
		if e != nil {
			c.N++
		}
		return err == nil, err
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return c, err
}

// meter charges a query's candidates against its Budget and Deadline.
type meter struct {
	q            *EventQuery
	spent, looks int
	random       bool // the last candidate was read on its own
}

func (m *meter) charge(s *stream) {
	m.looks++
	m.spent++
	m.random = !s.events
	if m.random {
		m.spent += RandomRead - 1
	}
}

// chargeKey charges a candidate counted from its index key alone: one
// read in a run, no event read.
func (m *meter) chargeKey() {
	m.looks++
	m.spent++
	m.random = false
}

// done reports whether the query may look at no more candidates. The
// clock is read after each candidate read on its own, and every 64 read
// in a run.
func (m *meter) done() bool {
	if m.q.Budget > 0 && m.spent >= m.q.Budget {
		return true
	}
	if m.q.Deadline.IsZero() || !(m.random || m.looks > 0 && m.looks%64 == 0) {
		return false
	}
	return time.Now().After(m.q.Deadline)
}

// walk calls fn at each of q's candidates, newest first, each event once,
// until fn answers false or an error.
func (db *DB) walk(q EventQuery, fn func(*stream) (bool, error)) error {
	// One shared hold for all the iterators: taking closeMu once per
	// iterator could deadlock against a waiting Close.
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	var h, minus candHeap
	defer func() { h.close(); minus.close() }()
	if err := db.openCandidates(&h, q); err != nil {
		return err
	}
	for _, m := range q.Minus {
		if err := db.openCandidates(&minus, EventQuery{From: m.From, Dest: m.Dest, Before: q.Before}); err != nil {
			return err
		}
	}
	heap.Init(&h)
	heap.Init(&minus)
	var last uint64
	for len(h) > 0 {
		s := h[0]
		if s.seq != last || last == 0 { // else the same event from another index
			last = s.seq
			out, err := minus.holds(s.seq)
			if err != nil {
				return err
			}
			if !out {
				if ok, err := fn(s); !ok || err != nil {
					return err
				}
			}
		}
		if err := h.next(); err != nil {
			return err
		}
	}
	return nil
}

// next moves the top stream on, dropping it when it ends.
func (h *candHeap) next() error {
	s := (*h)[0]
	if s.advance() {
		heap.Fix(h, 0)
		return nil
	}
	if err := s.it.Error(); err != nil {
		return err
	}
	heap.Pop(h).(*stream).it.Close()
	return nil
}

// holds reports whether seq is among the heap's candidates, moving past
// every higher one: asked with falling sequences, it walks each stream
// once.
func (h *candHeap) holds(seq uint64) (bool, error) {
	for len(*h) > 0 && (*h)[0].seq > seq {
		if err := h.next(); err != nil {
			return false, err
		}
	}
	return len(*h) > 0 && (*h)[0].seq == seq, nil
}

// candidate reads the event s is at and answers it whole if match takes
// it, nil if not, errStopScan if match ends the list. The caller holds
// closeMu.
func (db *DB) candidate(s *stream, match func(*Event) (bool, bool)) (*Event, error) {
	var val []byte
	if s.events {
		val = s.it.Value()
	} else {
		v, err := db.getLocked(eventKey(s.part, s.seq))
		if errors.Is(err, ErrNotFound) {
			return nil, nil // expired since it was indexed
		}
		if err != nil {
			return nil, err
		}
		val = v
	}
	if match != nil {
		e, err := decodeEventHead(s.part, s.seq, val)
		if err != nil {
			return nil, err
		}
		ok, stop := match(e)
		if stop {
			return nil, errStopScan
		}
		if !ok {
			return nil, nil
		}
	}
	return decodeEvent(s.part, s.seq, val)
}

// stream walks one key range newest first, decoding each key into the
// event it names. The event stream reads event keys themselves, so a
// candidate needs no second read.
type stream struct {
	it     *pebble.Iterator
	decode func(k, v []byte) (part uint16, seq uint64, ok bool)
	events bool
	part   uint16
	seq    uint64
}

// settle moves back from the iterator's position to the first key that
// decodes, and reports whether there is one.
func (s *stream) settle(ok bool) bool {
	for ; ok; ok = s.it.Prev() {
		if part, seq, good := s.decode(s.it.Key(), s.it.Value()); good {
			s.part, s.seq = part, seq
			return true
		}
	}
	return false
}

func (s *stream) advance() bool { return s.settle(s.it.Prev()) }

// candHeap orders streams by their current sequence, highest first.
type candHeap []*stream

func (h candHeap) Len() int           { return len(h) }
func (h candHeap) Less(i, j int) bool { return h[i].seq > h[j].seq }
func (h candHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)        { *h = append(*h, x.(*stream)) }
func (h *candHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

func (h candHeap) close() {
	for _, s := range h {
		s.it.Close()
	}
}

// addStream opens a stream over [lo, hi) and keeps it if it has a key; the
// caller holds closeMu.
func (db *DB) addStream(h *candHeap, lo, hi []byte, events bool, decode func(k, v []byte) (uint16, uint64, bool)) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	s := &stream{it: it, decode: decode, events: events}
	if !s.settle(it.Last()) {
		err := it.Error()
		it.Close()
		return err
	}
	*h = append(*h, s)
	return nil
}

// upper is the exclusive upper bound of a range of keys ending in a
// sequence: the key of before in it, or the end of the range.
func upper(prefix []byte, before uint64) []byte {
	if before == 0 {
		return prefixEnd(prefix)
	}
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), before)
}

// addPartitionStreams adds a stream over the keys p <part> sub <seq:8> of
// every partition: the events themselves, or an index of them.
func (db *DB) addPartitionStreams(h *candHeap, sub byte, before uint64) error {
	for p := range db.partitions {
		lo := partKey(uint16(p), sub, 0)
		if err := db.addStream(h, lo, upper(lo, before), sub == subEvent, inPartition(uint16(p))); err != nil {
			return err
		}
	}
	return nil
}

// inPartition decodes keys that end in the sequence of an event of part.
func inPartition(part uint16) func(k, _ []byte) (uint16, uint64, bool) {
	return func(k, _ []byte) (uint16, uint64, bool) {
		seq, ok := seqTail(k)
		return part, seq, ok
	}
}

// seqTail reads the sequence that ends a key.
func seqTail(k []byte) (uint64, bool) {
	if len(k) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(k)-8:]), true
}

func (db *DB) openCandidates(h *candHeap, q EventQuery) error {
	switch q.From {
	case AllEvents:
		return db.addPartitionStreams(h, subEvent, q.Before)
	case NoDestinations:
		return db.addPartitionStreams(h, subNoDest, q.Before)
	case DeadAt:
		return db.addDestStreams(h, subDead, q.Dest, q.Before)
	case PendingAt:
		for _, sub := range []byte{subPending, subInbox} {
			if err := db.addDestStreams(h, sub, q.Dest, q.Before); err != nil {
				return err
			}
		}
		return db.addOutboxStreams(h, q.Dest, q.Before)
	case RoutedAt:
		for _, sub := range []byte{subDelivery, subPending, subInbox} {
			if err := db.addDestStreams(h, sub, q.Dest, q.Before); err != nil {
				return err
			}
		}
		return db.addOutboxStreams(h, q.Dest, q.Before)
	case WithKey:
		return db.addKeyStreams(h, q.Source, q.IdemKey, q.Before)
	}
	return nil
}

// addDestStreams adds a stream over dest's index sub, or over every
// destination's when dest is "".
func (db *DB) addDestStreams(h *candHeap, sub byte, dest string, before uint64) error {
	var dests []string
	if dest != "" {
		dests = []string{dest}
	} else {
		var err error
		if dests, err = db.destsInLocked(sub); err != nil {
			return err
		}
	}
	for _, d := range dests {
		lo := destPrefix(db.DestPartition(d), sub, d)
		if err := db.addStream(h, lo, upper(lo, before), false, destIndexDecoder(sub)); err != nil {
			return err
		}
	}
	return nil
}

// destIndexDecoder finds the event a destination's index key names: the
// sequence ends the key; the partition is the pending index's value, in
// the dead-letter index's event id, in the delivery record's event_id.
func destIndexDecoder(sub byte) func(k, v []byte) (uint16, uint64, bool) {
	return func(k, v []byte) (uint16, uint64, bool) {
		seq, ok := seqTail(k)
		if !ok {
			return 0, 0, false
		}
		switch sub {
		case subPending:
			if len(v) != 2 {
				return 0, 0, false
			}
			return binary.BigEndian.Uint16(v), seq, true
		case subDead:
			part, _, err := ParseEventID(string(v))
			return part, seq, err == nil
		case subInbox:
			if len(v) != 10 {
				return 0, 0, false
			}
			return binary.BigEndian.Uint16(v[8:]), seq, true
		default:
			part, ok := recordEventPart(v)
			return part, seq, ok
		}
	}
}

var eventIDField = []byte(`"event_id":"`)

// recordEventPart reads the partition out of a delivery record's event_id
// without decoding the record.
func recordEventPart(v []byte) (uint16, bool) {
	if len(v) > 0 && v[0] == deliveryFormat {
		d := decoder{b: v[1:]}
		d.word() // destination
		id := d.word()
		if d.err != nil {
			return 0, false
		}
		part, _, err := ParseEventID(id)
		return part, err == nil
	}
	i := bytes.Index(v, eventIDField)
	if i < 0 {
		return 0, false
	}
	v = v[i+len(eventIDField):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return 0, false
	}
	part, _, err := ParseEventID(string(v[:j]))
	return part, err == nil
}

// addOutboxStreams adds each partition's outbox entries for dest (any
// destination's when dest is "") with a sequence below before.
func (db *DB) addOutboxStreams(h *candHeap, dest string, before uint64) error {
	for p := range db.partitions {
		lo := partKey(uint16(p), subOutbox, 0)
		part := uint16(p)
		if err := db.addStream(h, lo, upper(lo, before), false, func(k, _ []byte) (uint16, uint64, bool) {
			rest := k[len(lo):]
			if len(rest) < 8 || (dest != "" && string(rest[8:]) != dest) {
				return 0, 0, false
			}
			return part, binary.BigEndian.Uint64(rest[:8]), true
		}); err != nil {
			return err
		}
	}
	return nil
}

// addKeyStreams adds the events the dedupe keys of (source, key) name;
// every source's when source is "". A key names the newest event that
// carried it (an older one, sent again after the dedupe window, is named
// no more).
func (db *DB) addKeyStreams(h *candHeap, source, key string, before uint64) error {
	sources := []string{source}
	if source == "" {
		var err error
		if sources, err = db.dedupeSourcesLocked(); err != nil {
			return err
		}
	}
	var found []struct {
		part uint16
		seq  uint64
	}
	for _, src := range sources {
		part := db.EventPartition(src, key)
		v, err := db.getLocked(dedupeKey(part, src, key))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if len(v) < 8 {
			return ErrCorrupt
		}
		if seq := binary.BigEndian.Uint64(v[:8]); before == 0 || seq < before {
			found = append(found, struct {
				part uint16
				seq  uint64
			}{part, seq})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].seq < found[j].seq })
	// Each as a stream over its own event key: the heap merges them.
	for _, f := range found {
		lo := eventKey(f.part, f.seq)
		if err := db.addStream(h, lo, prefixEnd(lo), true, inPartition(f.part)); err != nil {
			return err
		}
	}
	return nil
}

// destsInLocked lists the destinations with a key under sub, seeking past
// each destination's range rather than reading it; the caller holds
// closeMu.
func (db *DB) destsInLocked(sub byte) ([]string, error) {
	var out []string
	for p := range db.partitions {
		lo := partKey(uint16(p), sub, 0)
		if err := db.skipScanLocked(lo, func(name string) []byte {
			out = append(out, name)
			return prefixEnd(destPrefix(uint16(p), sub, name))
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dedupeSourcesLocked lists the sources with a dedupe key in any
// partition, once each; the caller holds closeMu.
func (db *DB) dedupeSourcesLocked() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for p := range db.partitions {
		lo := partKey(uint16(p), subDedupe, 0)
		if err := db.skipScanLocked(lo, func(name string) []byte {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
			b := append(append([]byte(nil), lo...), name...)
			return prefixEnd(append(b, 0))
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// skipScanLocked visits the distinct names of keys lo <name> 0 ...: for
// each it calls next, which answers where to seek to.
func (db *DB) skipScanLocked(lo []byte, next func(name string) []byte) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		rest := it.Key()[len(lo):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return ErrCorrupt
		}
		ok = it.SeekGE(next(string(rest[:i])))
	}
	return it.Error()
}

// SeqAt answers the sequence of a stored event received at or after t,
// the lowest that bisection over sequences finds, or 0 when the newest
// event was received before t. Sequences grow with receive time, give or
// take the moment between a request's arrival and its sequence, so the
// answer bounds a time range once that slack is added.
func (db *DB) SeqAt(t time.Time) (uint64, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return 0, ErrClosed
	}
	its := make([]*pebble.Iterator, 0, db.partitions)
	defer func() {
		for _, it := range its {
			it.Close()
		}
	}()
	for p := range db.partitions {
		lo := partKey(uint16(p), subEvent, 0)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			return 0, err
		}
		its = append(its, it)
	}
	// probe answers the first event at or after sequence s in any
	// partition: its sequence and receive time (ok false: none).
	probe := func(s uint64) (seq uint64, at int64, ok bool, err error) {
		for p, it := range its {
			if !it.SeekGE(eventKey(uint16(p), s)) {
				if err := it.Error(); err != nil {
					return 0, 0, false, err
				}
				continue
			}
			k := it.Key()
			got, _ := seqTail(k)
			if ok && got >= seq {
				continue
			}
			v := it.Value()
			if len(v) < 2 || v[0] != eventFormat {
				return 0, 0, false, ErrCorrupt
			}
			t, n := binary.Varint(v[1:])
			if n <= 0 {
				return 0, 0, false, ErrCorrupt
			}
			seq, at, ok = got, t, true
		}
		return seq, at, ok, nil
	}
	want := t.UnixNano()
	lo, hi := uint64(1), db.seq.Load()+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		seq, at, ok, err := probe(mid)
		if err != nil {
			return 0, err
		}
		if !ok || at >= want {
			hi = mid
		} else {
			lo = seq + 1
		}
	}
	seq, at, ok, err := probe(lo)
	if err != nil || !ok || at < want {
		return 0, err
	}
	return seq, nil
}
