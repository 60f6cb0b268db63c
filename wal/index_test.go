package wal

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A delivery's state in indexModel, as the destination actor moves it.
type deliveryState uint8

const (
	inOutbox deliveryState = iota + 1 // acknowledged, not yet in the queue
	queued                            // in the queue, no record yet
	retrying                          // in the queue with a pending record
	delivered
	dead
)

// indexModel writes every status change the way the shards and destination
// actors do (the same batches, through the same calls) and keeps what the
// store should then hold.
type indexModel struct {
	t      *testing.T
	db     *DB
	rng    *rand.Rand
	dests  []string
	events []*Event
	state  map[string]map[string]deliveryState // event id -> dest -> state
	qseq   map[[2]string]uint64                // (event id, dest) -> its queue entry
	next   map[string]uint64                   // dest -> next qseq
	at     time.Time
}

func newIndexModel(t *testing.T, db *DB, seed uint64) *indexModel {
	return &indexModel{t: t, db: db, rng: rand.New(rand.NewPCG(seed, 1)), dests: []string{"a", "b", "c"},
		state: map[string]map[string]deliveryState{}, qseq: map[[2]string]uint64{}, next: map[string]uint64{},
		at: time.Unix(1_700_000_000, 0).UTC()}
}

// ingest writes an event routed to dests, as a shard does.
func (m *indexModel) ingest(b *Batch, source string, dests ...string) *Event {
	m.at = m.at.Add(time.Second)
	key := fmt.Sprintf("k%d", len(m.events))
	e := &Event{Partition: m.db.EventPartition(source, key), Seq: m.db.NextSeq(), Source: source, IdemKey: key,
		EventType: "t", ReceivedAt: m.at, Body: []byte("{}"), Destinations: dests}
	b.PutEvent(e)
	b.PutDedupe(e.Partition, source, key, e.Seq, e.ReceivedAt)
	m.state[e.ID()] = map[string]deliveryState{}
	for _, d := range dests {
		b.PutOutbox(e.Partition, e.Seq, d)
		m.state[e.ID()][d] = inOutbox
	}
	m.events = append(m.events, e)
	return e
}

func (m *indexModel) enqueue(b *Batch, e *Event, dest string) {
	m.next[dest]++
	q := m.next[dest]
	b.PutQueue(dest, q, e.Partition, e.Seq)
	m.qseq[[2]string{e.ID(), dest}] = q
}

func (m *indexModel) record(b *Batch, e *Event, dest, status string) {
	b.PutDelivery(e.Seq, &Delivery{Destination: dest, EventID: e.ID(), Status: status, UpdatedAt: m.at,
		Attempts: []Attempt{{N: 1, At: m.at, StatusCode: 503}}})
}

// step moves one delivery of e at dest on, as its destination actor would,
// and reports whether it had a move to make.
func (m *indexModel) step(b *Batch, e *Event, dest string) bool {
	id := e.ID()
	switch m.state[id][dest] {
	case inOutbox: // enqueue, acknowledging the outbox entry
		m.enqueue(b, e, dest)
		b.DeleteOutbox(e.Partition, e.Seq, dest)
		m.state[id][dest] = queued
	case queued, retrying:
		switch m.rng.IntN(3) {
		case 0: // an attempt failed, another is due
			m.record(b, e, dest, StatusPending)
			m.state[id][dest] = retrying
		case 1:
			b.DeleteQueue(dest, m.qseq[[2]string{id, dest}], e.Seq)
			m.record(b, e, dest, StatusDelivered)
			m.state[id][dest] = delivered
		case 2:
			b.DeleteQueue(dest, m.qseq[[2]string{id, dest}], e.Seq)
			m.record(b, e, dest, StatusDead)
			m.state[id][dest] = dead
		}
	case delivered, dead: // a replay (or a redrive) takes it back
		if m.state[id][dest] == dead {
			b.DeleteDead(dest, e.Seq)
		}
		m.record(b, e, dest, StatusPending)
		m.enqueue(b, e, dest)
		m.state[id][dest] = retrying
	default:
		return false
	}
	return true
}

// expire runs retention over everything received up to cutoff and drops
// from the model what it should have deleted.
func (m *indexModel) expire(cutoff time.Time) {
	if _, err := m.db.ExpireEvents(cutoff, 1000); err != nil {
		m.t.Fatal(err)
	}
	m.events = slices.DeleteFunc(m.events, func(e *Event) bool {
		if !e.ReceivedAt.Before(cutoff) {
			return false
		}
		for _, s := range m.state[e.ID()] {
			if s != delivered && s != dead {
				return false
			}
		}
		delete(m.state, e.ID())
		return true
	})
}

// want lists the model's events that pick selects, newest first.
func (m *indexModel) want(pick func(e *Event, states map[string]deliveryState) bool) []string {
	var out []string
	for i := len(m.events) - 1; i >= 0; i-- {
		if e := m.events[i]; pick(e, m.state[e.ID()]) {
			out = append(out, e.ID())
		}
	}
	return out
}

// query pages through q three events at a time.
func (m *indexModel) query(q EventQuery) []string {
	m.t.Helper()
	var out []string
	for {
		evs, next, err := m.db.QueryEvents(q, 3)
		if err != nil {
			m.t.Fatal(err)
		}
		for _, e := range evs {
			out = append(out, e.ID())
		}
		if next == 0 {
			return out
		}
		q.Before = next
	}
}

// check compares every index with its records and every kind of query with
// the model.
func (m *indexModel) check(when string) {
	m.t.Helper()
	if err := m.db.CheckIndexes(); err != nil {
		m.t.Fatalf("%s: %v", when, err)
	}
	has := func(set ...deliveryState) func(string) func(*Event, map[string]deliveryState) bool {
		return func(dest string) func(*Event, map[string]deliveryState) bool {
			return func(_ *Event, st map[string]deliveryState) bool {
				for d, s := range st {
					if (dest == "" || d == dest) && slices.Contains(set, s) {
						return true
					}
				}
				return false
			}
		}
	}
	pending, deadAt, routed := has(inOutbox, queued, retrying), has(dead), has(inOutbox, queued, retrying, delivered, dead)
	cases := []struct {
		name string
		q    EventQuery
		want []string
	}{
		{"all", EventQuery{}, m.want(func(*Event, map[string]deliveryState) bool { return true })},
		{"pending anywhere", EventQuery{From: PendingAt}, m.want(pending(""))},
		{"dead anywhere", EventQuery{From: DeadAt}, m.want(deadAt(""))},
		{"no destinations", EventQuery{From: NoDestinations}, m.want(func(e *Event, _ map[string]deliveryState) bool { return len(e.Destinations) == 0 })},
	}
	for _, d := range m.dests {
		cases = append(cases,
			struct {
				name string
				q    EventQuery
				want []string
			}{"pending at " + d, EventQuery{From: PendingAt, Dest: d}, m.want(pending(d))},
			struct {
				name string
				q    EventQuery
				want []string
			}{"dead at " + d, EventQuery{From: DeadAt, Dest: d}, m.want(deadAt(d))},
			struct {
				name string
				q    EventQuery
				want []string
			}{"routed to " + d, EventQuery{From: RoutedAt, Dest: d}, m.want(routed(d))})
	}
	for _, c := range cases {
		if got := m.query(c.q); !slices.Equal(got, c.want) {
			m.t.Fatalf("%s: %s lists %v, want %v", when, c.name, got, c.want)
		}
		if n, err := m.db.CountQuery(c.q, 1000); err != nil || n.N != len(c.want) || n.More {
			m.t.Fatalf("%s: %s counts %+v, %v; want %d", when, c.name, n, err, len(c.want))
		}
		if len(c.want) > 1 {
			if n, err := m.db.CountQuery(c.q, 1); err != nil || n.N != 1 || !n.More {
				m.t.Fatalf("%s: %s counts %+v, %v with max 1", when, c.name, n, err)
			}
		}
	}
}

// Every status change, written as the actors write it, keeps each index
// equal to what its records say, and each index lists exactly the events
// in that state: ingest, enqueue, failed attempts, delivery, dead-letter,
// replay of either, retention.
func TestIndexesFollowEveryStatusChange(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			db := openTest(t, t.TempDir())
			defer db.Close()
			m := newIndexModel(t, db, seed)
			commit := func(b *Batch, when string) {
				if err := db.CommitWait(b); err != nil {
					t.Fatal(err)
				}
				m.check(when)
			}
			for i := range 200 {
				b := db.NewBatch()
				switch r := m.rng.IntN(10); {
				case r < 3 || len(m.events) == 0:
					var dests []string
					for _, d := range m.dests {
						if m.rng.IntN(2) == 0 {
							dests = append(dests, d)
						}
					}
					m.ingest(b, []string{"gh", "shop"}[m.rng.IntN(2)], dests...)
				case r < 9:
					// Several deliveries in one batch, as a group commit joins them.
					for range 1 + m.rng.IntN(3) {
						e := m.events[m.rng.IntN(len(m.events))]
						if len(e.Destinations) > 0 {
							m.step(b, e, e.Destinations[m.rng.IntN(len(e.Destinations))])
						}
					}
				default:
					b.Discard()
					m.expire(m.events[m.rng.IntN(len(m.events))].ReceivedAt)
					m.check(fmt.Sprintf("step %d (retention)", i))
					continue
				}
				commit(b, fmt.Sprintf("step %d", i))
			}
			// Finish everything, then retention empties the store and
			// every index with it.
			for _, e := range slices.Clone(m.events) {
				for _, d := range e.Destinations {
					for m.state[e.ID()][d] != delivered && m.state[e.ID()][d] != dead {
						b := db.NewBatch()
						m.step(b, e, d)
						commit(b, "finishing")
					}
				}
			}
			m.expire(m.at.Add(time.Second))
			m.check("after retention")
			if len(m.events) != 0 {
				t.Fatalf("%d events left after retention", len(m.events))
			}
			for _, sub := range []byte{subPending, subDead, subNoDest, subQueue, subDelivery, subOutbox} {
				for p := range db.Partitions() {
					lo := partKey(uint16(p), sub, 0)
					if k, ok, err := db.lastKey(lo, prefixEnd(lo)); err != nil || ok {
						t.Fatalf("key %q left after retention (%v)", k, err)
					}
				}
			}
		})
	}
}

// A crash can never leave an index behind its records: each is written in
// the batch that changes them, and a batch is whole or absent after a
// crash. The store is cloned as a crash would leave it (some unsynced
// writes kept, some lost) while batches are in flight, and every clone
// opens with indexes that agree with its records.
func TestIndexesAgreeAfterACrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	cfg := Config{Partitions: 4, CacheSize: 8 << 20, SecretKey: make([]byte, 32), BallastBytes: -1, MinFreeBytes: -1, fs: mem}
	db, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := newIndexModel(t, db, 7)
	rng := rand.New(rand.NewPCG(7, 7))
	lost := 0
	for round := range 40 {
		// A few batches handed over without waiting: the clone is taken
		// while they are on their way to disk.
		n := 1 + m.rng.IntN(6)
		done := make(chan error, n)
		for range n {
			b := db.NewBatch()
			if len(m.events) < 5 || m.rng.IntN(3) == 0 {
				m.ingest(b, "gh", m.dests[:1+m.rng.IntN(len(m.dests))]...)
			} else {
				for range 1 + m.rng.IntN(4) {
					e := m.events[m.rng.IntN(len(m.events))]
					m.step(b, e, e.Destinations[m.rng.IntN(len(e.Destinations))])
				}
			}
			db.Commit(b, func(err error) { done <- err })
		}
		crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(uint64(round), 3))})
		ccfg := cfg
		ccfg.fs = crashed
		cdb, err := Open(t.TempDir(), ccfg)
		if err != nil {
			t.Fatalf("round %d: opening the crashed store: %v", round, err)
		}
		if err := cdb.CheckIndexes(); err != nil {
			t.Fatalf("round %d: after a crash: %v", round, err)
		}
		if n, _, err := cdb.CountEvents(len(m.events)); err != nil {
			t.Fatal(err)
		} else if n < len(m.events) {
			lost++ // the crash took batches that were on their way
		}
		cdb.Close()
		for range n {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	m.check("after the last round")
	if lost == 0 {
		t.Fatal("no crash lost a batch in flight: the test proves nothing")
	}
	t.Logf("%d of 40 crashes lost batches in flight", lost)
}

// A data dir from before the indexes gets them built once, when it is
// opened: the pending index of every queue entry, the no-destination entry
// of every event routed nowhere.
func TestOpenBuildsIndexesOfAnOlderStore(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	m := newIndexModel(t, db, 3)
	b := db.NewBatch()
	for i := range 30 {
		e := m.ingest(b, "gh", m.dests[:i%4]...)
		for _, d := range e.Destinations {
			m.step(b, e, d)
		}
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	// Take the store back to before: no index keys, no version.
	raw := db.pdb.NewBatch()
	for p := range db.Partitions() {
		for _, sub := range []byte{subPending, subNoDest} {
			lo := partKey(uint16(p), sub, 0)
			raw.DeleteRange(lo, prefixEnd(lo), nil)
		}
	}
	raw.Delete(indexVersionKey, nil)
	if err := db.pdb.Apply(raw, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if db.CheckIndexes() == nil {
		t.Fatal("CheckIndexes finds nothing wrong with the indexes deleted")
	}
	db.Close()

	db = openTest(t, dir)
	defer db.Close()
	m.db = db
	m.check("after reopening")
}

// SeqAt finds, by bisection, an event received at or after a time: the
// first one while receive times grow with sequences.
func TestSeqAt(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	if s, err := db.SeqAt(time.Now()); err != nil || s != 0 {
		t.Fatalf("empty store: %d, %v", s, err)
	}
	m := newIndexModel(t, db, 1)
	var evs []*Event
	for range 200 {
		b := db.NewBatch()
		evs = append(evs, m.ingest(b, []string{"a", "b", "c"}[m.rng.IntN(3)]))
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		at   time.Time
		want uint64
	}{
		{evs[0].ReceivedAt.Add(-time.Hour), evs[0].Seq},
		{evs[0].ReceivedAt, evs[0].Seq},
		{evs[0].ReceivedAt.Add(time.Millisecond), evs[1].Seq},
		{evs[117].ReceivedAt, evs[117].Seq},
		{evs[117].ReceivedAt.Add(-time.Millisecond), evs[117].Seq},
		{evs[199].ReceivedAt, evs[199].Seq},
		{evs[199].ReceivedAt.Add(time.Nanosecond), 0},
	} {
		if got, err := db.SeqAt(c.at); err != nil || got != c.want {
			t.Errorf("SeqAt(%v) = %d, %v; want %d", c.at, got, err, c.want)
		}
	}
}

// WithKey finds the event a key names in the source given, or in any
// source; Before bounds it like any other list.
func TestQueryByKey(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	b := db.NewBatch()
	var evs []*Event
	for i, src := range []string{"gh", "shop", "gh", "stripe"} {
		e := &Event{Partition: db.EventPartition(src, "same"), Seq: db.NextSeq(), Source: src, IdemKey: "same", ReceivedAt: time.Unix(int64(i), 0)}
		if src == "gh" && i == 2 {
			e.IdemKey = "other"
			e.Partition = db.EventPartition(src, "other")
		}
		b.PutEvent(e)
		b.PutDedupe(e.Partition, src, e.IdemKey, e.Seq, e.ReceivedAt)
		evs = append(evs, e)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	m := &indexModel{t: t, db: db}
	for _, c := range []struct {
		q    EventQuery
		want []string
	}{
		{EventQuery{From: WithKey, IdemKey: "same"}, []string{evs[3].ID(), evs[1].ID(), evs[0].ID()}},
		{EventQuery{From: WithKey, IdemKey: "same", Source: "shop"}, []string{evs[1].ID()}},
		{EventQuery{From: WithKey, IdemKey: "same", Source: "nope"}, nil},
		{EventQuery{From: WithKey, IdemKey: "other"}, []string{evs[2].ID()}},
		{EventQuery{From: WithKey, IdemKey: "same", Before: evs[3].Seq}, []string{evs[1].ID(), evs[0].ID()}},
		{EventQuery{From: WithKey, IdemKey: "none"}, nil},
	} {
		if got := m.query(c.q); !slices.Equal(got, c.want) {
			t.Errorf("%+v lists %v, want %v", c.q, got, c.want)
		}
	}
}

// A page with a budget stops looking once it is spent, short or empty,
// with a cursor below the last candidate it looked at; paging on lists
// every match once, as a page without a budget would.
func TestQueryBudget(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	m := newIndexModel(t, db, 5)
	b := db.NewBatch()
	for i := range 200 {
		e := m.ingest(b, "gh", "a")
		if i%3 == 0 {
			m.step(b, e, "a") // queued: pending at a
		}
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	rare := func(e *Event) (bool, bool) { return e.Seq%17 == 0, false }
	for _, c := range []struct {
		name   string
		q      EventQuery
		budget int
		most   int // candidates a page may look at
	}{
		{"every event", EventQuery{Match: rare}, 25, 25},
		{"from an index", EventQuery{From: PendingAt, Dest: "a", Match: rare}, 5 * RandomRead, 5},
		{"past its deadline", EventQuery{Match: func(e *Event) (bool, bool) { return e.Seq%97 == 0, false }, Deadline: time.Unix(1, 0)}, 0, 64},
	} {
		want := m.query(c.q)
		if len(want) == 0 {
			t.Fatalf("%s: nothing matches", c.name)
		}
		q := c.q
		q.Budget = c.budget
		var got []string
		short := 0
		for {
			looked := 0
			match := q.Match
			q.Match = func(e *Event) (bool, bool) { looked++; return match(e) }
			evs, next, err := db.QueryEvents(q, 3)
			q.Match = match
			if err != nil {
				t.Fatal(err)
			}
			if looked > c.most {
				t.Fatalf("%s: a page looked at %d candidates, budget %d", c.name, looked, c.budget)
			}
			if len(evs) < 3 && next != 0 {
				short++
			}
			for _, e := range evs {
				got = append(got, e.ID())
			}
			if next == 0 {
				break
			}
			q.Before = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: pages with a budget list %v, without %v", c.name, got, want)
		}
		if short == 0 {
			t.Errorf("%s: no page was cut short by its budget", c.name)
		}
	}
}

// In a cluster an event waits in its ordered destination's inbox before
// the queue: it is pending there, and routed there, before and after the
// owner takes it.
func TestInboxEventsArePending(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	m := newIndexModel(t, db, 9)
	b := db.NewBatch()
	e := m.ingest(b, "gh")
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	dest := "ordered"
	rb := db.NewReplicaBatch(db.DestPartition(dest))
	if err := rb.PutInbox(dest, e.Partition, e.Seq, 5); err != nil {
		t.Fatal(err)
	}
	if err := rb.CommitApplied(5); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"in the inbox", "taken into the queue"} {
		for _, q := range []EventQuery{{From: PendingAt}, {From: PendingAt, Dest: dest}, {From: RoutedAt, Dest: dest}} {
			if got := m.query(q); !slices.Equal(got, []string{e.ID()}) {
				t.Fatalf("%s: %+v lists %v", when, q, got)
			}
		}
		b := db.NewBatch()
		b.PutQueue(dest, 1, e.Partition, e.Seq)
		b.DeleteInbox(dest, e.Seq)
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CheckIndexes(); err != nil {
		t.Fatal(err)
	}
}

// A count without a Match reads only the index, but its Budget and
// Deadline still bound it: it stops with More and a lower bound.
func TestCountQueryWithoutMatchKeepsItsBudget(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	m := newIndexModel(t, db, 5)
	b := db.NewBatch()
	for range 300 {
		m.step(b, m.ingest(b, "gh", "a"), "a") // queued: pending at a
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	pending := EventQuery{From: PendingAt, Dest: "a"}
	if c, err := db.CountQuery(pending, 1000); err != nil || c.N != 300 || c.More {
		t.Fatalf("unbounded count: %+v %v, want 300", c, err)
	}
	for _, tc := range []struct {
		name string
		q    EventQuery
		most int
	}{
		{"budget", EventQuery{From: PendingAt, Dest: "a", Budget: 40}, 40},
		{"deadline passed", EventQuery{From: PendingAt, Dest: "a", Deadline: time.Unix(1, 0)}, 64},
	} {
		c, err := db.CountQuery(tc.q, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !c.More || c.N > tc.most || c.Looked > tc.most {
			t.Errorf("%s: %+v, want More with at most %d looked", tc.name, c, tc.most)
		}
	}
}
