package actors

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/webhookops/webhookops/wal"
)

// ingestMsg asks a shard to persist one event. reply is buffered (1), so the
// shard and the committer never block on a handler that went away.
type ingestMsg struct {
	part  uint16
	ev    *wal.Event
	reply chan ingestReply
}

type ingestReply struct {
	eventID   string
	duplicate bool
	err       error
	// wait is set when the key's first event is still being committed: the
	// caller waits on it and answers as a duplicate of its outcome.
	wait *dedupeEntry
}

// dedupeEntry is one idempotency key in the shard's window. done is nil for
// keys loaded from disk (already durable); otherwise it is closed after the
// commit, with err set before.
type dedupeEntry struct {
	part uint16
	seq  uint64
	at   time.Time
	done chan struct{}
	err  error
}

// settled reports whether the entry is durable (ok) or failed.
func (e *dedupeEntry) settled() (durable, failed bool) {
	if e.done == nil {
		return true, false
	}
	select {
	case <-e.done:
		return e.err == nil, e.err != nil
	default:
		return false, false
	}
}

type sweepMsg struct{}

// shard is an ingress shard actor: it owns the dedupe keys of the
// partitions p with p % shards == index, so one key always meets the same
// shard and a hot source spreads over all of them. It never waits for a
// commit: it hands batches to the group committer and moves on, which is
// what lets many events share one fsync.
type shard struct {
	n     *Node
	index int
	keys  map[string]*dedupeEntry
}

func dedupeMapKey(source, key string) string { return source + "\x00" + key }

func (s *shard) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.keys = map[string]*dedupeEntry{}
	case *actor.Restarting:
		s.keys = nil
	case *ingestMsg:
		s.ingest(m)
	case sweepMsg:
		s.sweep()
	}
}

// The shard's map is a cache of recent keys, not the whole dedupe window:
// a window of days at a steady rate would not fit in memory. Keys still
// committing always stay in it (they are not on disk yet); settled keys
// leave it after hotKeyAge, or sooner when it outgrows maxHotKeys. A key
// not in the map is looked up in Pebble, which is authoritative because
// the shard is the only writer of its keys.
const (
	hotKeyAge  = 10 * time.Minute
	maxHotKeys = 1 << 18 // per shard
)

func (s *shard) sweep() {
	cutoff := s.n.clock.Now().Add(-hotKeyAge)
	for k, e := range s.keys {
		if durable, failed := e.settled(); failed || (durable && (e.at.Before(cutoff) || len(s.keys) > maxHotKeys)) {
			delete(s.keys, k)
		}
	}
}

// lookup finds a key's entry in the map, or else on disk (and caches it)
// if it was received after `after`, the start of the window.
func (s *shard) lookup(mapKey string, part uint16, source, key string, after time.Time) (*dedupeEntry, error) {
	if e, ok := s.keys[mapKey]; ok {
		return e, nil
	}
	seq, at, err := s.n.db.GetDedupeAfter(part, source, key, after)
	if errors.Is(err, wal.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e := &dedupeEntry{part: part, seq: seq, at: at}
	if len(s.keys) < maxHotKeys {
		s.keys[mapKey] = e
	}
	return e, nil
}

func (s *shard) ingest(m *ingestMsg) {
	ev := m.ev
	k := dedupeMapKey(ev.Source, ev.IdemKey)
	e, err := s.lookup(k, m.part, ev.Source, ev.IdemKey, ev.ReceivedAt.Add(-s.n.cfg.DedupeWindow))
	if err != nil {
		m.reply <- ingestReply{err: err}
		return
	}
	if e != nil && ev.ReceivedAt.Sub(e.at) < s.n.cfg.DedupeWindow {
		durable, failed := e.settled()
		switch {
		case durable:
			m.reply <- ingestReply{eventID: wal.EventID(e.part, e.seq), duplicate: true}
			s.n.auditDuplicate(ev, wal.EventID(e.part, e.seq))
			return
		case !failed:
			m.reply <- ingestReply{eventID: wal.EventID(e.part, e.seq), duplicate: true, wait: e}
			return
		}
		// The first attempt failed to commit: this one takes its place.
	}
	ev.Partition = m.part
	ev.Seq = s.n.db.NextSeq()
	b := s.n.db.NewBatch()
	b.PutEvent(ev)
	b.PutDedupe(ev.Partition, ev.Source, ev.IdemKey, ev.Seq, ev.ReceivedAt)
	for _, d := range ev.Destinations {
		b.PutOutbox(ev.Partition, ev.Seq, d)
	}
	b.Audit(wal.AuditEntry{At: ev.ReceivedAt, Action: "event.received", ObjectType: "event", ObjectID: ev.ID(),
		Detail: map[string]string{"source": ev.Source, "idempotency_key": ev.IdemKey, "event_type": ev.EventType}})
	entry := &dedupeEntry{part: ev.Partition, seq: ev.Seq, at: ev.ReceivedAt, done: make(chan struct{})}
	s.keys[k] = entry
	n := s.n
	n.db.Commit(b, func(err error) {
		entry.err = err
		close(entry.done)
		if err == nil {
			// Fan out before answering: a request that arrives after this
			// answer can never reach a destination's mailbox first.
			for _, d := range ev.Destinations {
				n.dests.send(d, &enqueueMsg{ev: ev, fromOutbox: true})
			}
			n.metrics.received(ev.Source, "accepted")
		}
		m.reply <- ingestReply{eventID: ev.ID(), err: err}
	})
}
