package actors

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
)

// Messages routed to a destination through the registry.
type (
	// enqueueMsg appends an event to the destination's queue.
	enqueueMsg struct {
		ev         *wal.Event
		fromOutbox bool   // delete the event's outbox entry in the same batch
		replayID   string // set for a replay
	}
	// configMsg tells the actor its destination changed or was deleted.
	configMsg struct{}
	// wakeMsg only makes sure the actor is running (recovery, resume).
	wakeMsg struct{}
	// statsMsg asks for the queue's state.
	statsMsg struct{ reply chan DestinationStats }
)

func (*enqueueMsg) isRouted() {}
func (configMsg) isRouted()   {}
func (wakeMsg) isRouted()     {}
func (statsMsg) isRouted()    {}

// Messages the actor sends itself.
type (
	attemptDone struct {
		it      *item
		res     delivery.Result
		started time.Time
	}
	committedMsg struct{ barrier, refill bool }
	timerMsg     struct{ gen uint64 }
)

// DestinationStats is what an operator sees of a destination's queue.
type DestinationStats struct {
	QueueDepth       int       `json:"queue_depth"`
	InFlight         int       `json:"in_flight"`
	OldestPendingAt  time.Time `json:"oldest_pending_at,omitzero"`
	CircuitOpen      bool      `json:"circuit_open"`
	ConsecutiveFails int       `json:"consecutive_failures"`
}

// item is one pending delivery held in memory.
type item struct {
	qseq     uint64
	part     uint16
	seq      uint64
	ev       *wal.Event // nil until needed when paged in from disk
	d        *wal.Delivery
	inflight bool
	nextAt   time.Time
}

// breakerThreshold consecutive failed attempts open the circuit: the
// destination then probes with one attempt at a time until one succeeds.
const breakerThreshold = 5

// destination is the actor that owns one destination's queue and retry
// state, the only writer of both. Its state is its fields; time arrives as
// timerMsg; deliveries run on goroutines that report back as attemptDone.
//
// In memory it holds a window of the queue: every pending entry with
// qseq <= memHigh. Entries past the window stay on disk and are paged in
// by qseq, the same order the live path appended them in.
type destination struct {
	n     *Node
	slug  string
	entry *destEntry
	self  *actor.PID

	cfg    model.Destination // with defaults applied
	exists bool

	queue    []*item
	memHigh  uint64 // every pending qseq <= memHigh is in queue
	nextQSeq uint64

	inflight       int
	commitsPending int
	barrier        bool // ordered: the last outcome is not durable yet
	failures       int  // consecutive failed attempts
	lastStart      time.Time

	timer    Timer
	timerAt  time.Time
	timerGen uint64
}

func (d *destination) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		d.self = ctx.Self()
		d.start()
		ctx.SetReceiveTimeout(d.n.cfg.PassivateAfter)
	case *actor.Stopping:
		if d.timer != nil {
			d.timer.Stop()
		}
	case *enqueueMsg:
		d.entry.received.Add(1)
		d.enqueue(m)
	case configMsg:
		d.entry.received.Add(1)
		d.loadConfig()
	case wakeMsg:
		d.entry.received.Add(1)
	case statsMsg:
		d.entry.received.Add(1)
		m.reply <- d.stats()
	case *attemptDone:
		d.attemptDone(m)
	case committedMsg:
		d.commitsPending--
		if m.barrier {
			d.barrier = false
		}
		if m.refill {
			d.refill()
		}
	case timerMsg:
		if m.gen != d.timerGen {
			return
		}
		d.timer, d.timerAt = nil, time.Time{}
	case *actor.ReceiveTimeout:
		if len(d.queue) == 0 && d.inflight == 0 && d.commitsPending == 0 && d.memHigh+1 >= d.nextQSeq &&
			d.n.dests.passivate(d.slug, d.self) {
			ctx.Stop(d.self)
			return
		}
		// protoactor disarms the timeout when it fires: arm it again.
		ctx.SetReceiveTimeout(d.n.cfg.PassivateAfter)
		return
	default:
		return
	}
	d.pump()
}

func (d *destination) loadConfig() {
	cfg, ok := d.n.Snapshot().Destinations[d.slug]
	d.exists = ok
	d.cfg = cfg.WithDefaults()
}

func (d *destination) start() {
	d.loadConfig()
	last, err := d.n.db.LastQSeq(d.slug)
	if err != nil {
		panic(err) // the supervisor retries; without the queue we must not deliver
	}
	d.nextQSeq = last + 1
	d.refill()
}

// refill pages queue entries in from disk while the window has room.
func (d *destination) refill() {
	window := d.n.cfg.QueueWindow
	for d.memHigh+1 < d.nextQSeq && len(d.queue) < window {
		page, err := d.n.db.QueuePage(d.slug, d.memHigh, window-len(d.queue))
		if err != nil {
			panic(err)
		}
		if len(page) == 0 {
			return // the rest is still being committed; its callback refills
		}
		for _, q := range page {
			rec, err := d.n.db.GetDelivery(d.slug, q.EventSeq)
			if err != nil {
				rec = &wal.Delivery{Destination: d.slug, EventID: wal.EventID(q.EventPart, q.EventSeq), Status: wal.StatusPending}
			}
			rec.QSeq = q.QSeq
			d.queue = append(d.queue, &item{qseq: q.QSeq, part: q.EventPart, seq: q.EventSeq, d: rec, nextAt: rec.NextAt})
			d.memHigh = q.QSeq
		}
	}
}

func (d *destination) enqueue(m *enqueueMsg) {
	ev := m.ev
	now := d.n.clock.Now().UTC()
	rec := &wal.Delivery{Destination: d.slug, EventID: ev.ID(), Status: wal.StatusPending, UpdatedAt: now}
	if m.replayID != "" {
		for _, it := range d.queue {
			if it.seq == ev.Seq && it.part == ev.Partition {
				// Already pending: the replay rides on the queued delivery.
				it.d.ReplayID = m.replayID
				return
			}
		}
	}
	qseq := d.nextQSeq
	rec.QSeq = qseq
	b := d.n.db.NewBatch()
	if m.replayID != "" {
		old, err := d.n.db.GetDelivery(d.slug, ev.Seq)
		switch {
		case err == nil && old.Status == wal.StatusPending:
			// Pending on disk beyond the window: the replay rides on it.
			// The record carries the replay's id, so the delivery's
			// outcome reaches the replay when it finishes.
			old.ReplayID = m.replayID
			b.PutDelivery(ev.Seq, old)
			d.commit(b, false, false)
			return
		case err == nil:
			rec.Attempts = old.Attempts
			rec.AttemptsBase = len(old.Attempts)
			if old.Status == wal.StatusDead {
				b.DeleteDead(d.slug, ev.Seq)
			}
		}
		rec.ReplayID = m.replayID
		b.PutDelivery(ev.Seq, rec)
	}
	d.nextQSeq++
	b.PutQueue(d.slug, qseq, ev.Partition, ev.Seq)
	if m.fromOutbox {
		b.DeleteOutbox(ev.Partition, ev.Seq, d.slug)
	}
	inMemory := d.memHigh+1 == qseq && len(d.queue) < d.n.cfg.QueueWindow
	if inMemory {
		d.queue = append(d.queue, &item{qseq: qseq, part: ev.Partition, seq: ev.Seq, ev: ev, d: rec})
		d.memHigh = qseq
	}
	d.commit(b, false, !inMemory)
}

// commit hands b to the group committer; the actor hears back as committedMsg.
func (d *destination) commit(b *wal.Batch, barrier, refill bool) {
	d.commitsPending++
	if barrier {
		d.barrier = true
	}
	self, root := d.self, d.n.system.Root
	d.n.db.Commit(b, func(err error) {
		// A stopped store said why once; a line per write would repeat it.
		if err != nil && !errors.Is(err, wal.ErrStopped) {
			d.n.log.Error("destination write failed", "destination", d.slug, "err", err)
		}
		root.Send(self, committedMsg{barrier: barrier, refill: refill})
	})
}

// pump starts every attempt that is due and allowed, and sets the timer for
// the next one.
func (d *destination) pump() {
	if len(d.queue) < d.n.cfg.QueueWindow/2 {
		d.refill()
	}
	if !d.exists || d.cfg.Paused || d.barrier {
		d.setTimer(time.Time{})
		return
	}
	now := d.n.clock.Now()
	ordered := d.cfg.Ordering == model.OrderingOrdered
	limit := d.cfg.MaxInFlight
	if ordered || d.failures >= breakerThreshold {
		limit = 1
	}
	var wake time.Time
	for _, it := range d.queue {
		if d.inflight >= limit {
			break
		}
		if it.inflight {
			if ordered {
				break
			}
			continue
		}
		if it.nextAt.After(now) {
			if wake.IsZero() || it.nextAt.Before(wake) {
				wake = it.nextAt
			}
			if ordered {
				break
			}
			continue
		}
		if d.cfg.RateLimit > 0 {
			gap := time.Duration(float64(time.Second) / d.cfg.RateLimit)
			if next := d.lastStart.Add(gap); next.After(now) {
				wake = next
				break
			}
		}
		d.startAttempt(it, now)
		if ordered {
			break
		}
	}
	d.setTimer(wake)
}

func (d *destination) setTimer(at time.Time) {
	if at.Equal(d.timerAt) {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.timerAt = at
	if at.IsZero() {
		return
	}
	d.timerGen++
	gen, self, root := d.timerGen, d.self, d.n.system.Root
	d.timer = d.n.clock.AfterFunc(at.Sub(d.n.clock.Now()), func() { root.Send(self, timerMsg{gen: gen}) })
}

func (d *destination) startAttempt(it *item, now time.Time) {
	if it.ev == nil {
		ev, err := d.n.db.GetEvent(it.part, it.seq)
		if err != nil {
			d.n.log.Error("queued event unreadable; dead-lettering it", "destination", d.slug, "event", it.d.EventID, "err", err)
			it.d.Attempts = append(it.d.Attempts, wal.Attempt{N: len(it.d.Attempts) + 1, At: now.UTC(), Error: "event unreadable: " + err.Error()})
			d.finish(it, wal.StatusDead)
			return
		}
		it.ev = ev
	}
	if !d.n.beginAttempt() {
		return // shutting down: the entry stays queued on disk
	}
	it.inflight = true
	d.inflight++
	d.lastStart = now
	req := delivery.Request{
		EventID:  it.d.EventID,
		Attempt:  len(it.d.Attempts) + 1,
		Headers:  it.ev.Headers,
		Body:     it.ev.Body,
		ReplayID: it.d.ReplayID,
	}
	cfg, self, n := d.cfg, d.self, d.n
	go func() {
		defer n.attempts.Done()
		ctx, cancel := context.WithTimeout(n.ctx, cfg.Timeout.D()+time.Second)
		res := n.deliverer.Deliver(ctx, cfg, req)
		cancel()
		n.system.Root.Send(self, &attemptDone{it: it, res: res, started: now})
	}()
}

func (d *destination) attemptDone(m *attemptDone) {
	it := m.it
	if !slices.Contains(d.queue, it) || !it.inflight {
		return // from before a restart: the entry was reloaded and will be retried
	}
	it.inflight = false
	d.inflight--
	res := m.res
	att := wal.Attempt{
		N:          len(it.d.Attempts) + 1,
		At:         m.started.UTC(),
		DurationMS: float64(res.Duration.Microseconds()) / 1000,
		StatusCode: res.StatusCode,
		Response:   string(res.Response),
		Error:      res.Err,
		ReplayID:   it.d.ReplayID,
	}
	it.d.Attempts = append(it.d.Attempts, att)
	d.n.metrics.attempt(d.slug, res.Success, res.Duration)
	if res.Success {
		d.failures = 0
		d.n.metrics.delivered(d.n.clock.Now().Sub(it.ev.ReceivedAt))
		d.finish(it, wal.StatusDelivered)
		return
	}
	d.failures++
	round := len(it.d.Attempts) - it.d.AttemptsBase
	if round >= d.cfg.MaxAttempts {
		d.finish(it, wal.StatusDead)
		return
	}
	delay := delivery.NextDelay(round, d.cfg, res, d.n.rand)
	it.nextAt = d.n.clock.Now().Add(delay)
	it.d.NextAt = it.nextAt.UTC()
	it.d.UpdatedAt = d.n.clock.Now().UTC()
	b := d.n.db.NewBatch()
	b.PutDelivery(it.seq, it.d)
	b.Audit(d.auditAttempt(it, att, "delivery.attempt_failed", map[string]string{"next_attempt_at": it.d.NextAt.Format(time.RFC3339Nano)}))
	d.commit(b, false, false)
}

func (d *destination) auditAttempt(it *item, att wal.Attempt, action string, extra map[string]string) wal.AuditEntry {
	detail := map[string]string{"destination": d.slug, "attempt": itoa(att.N)}
	if att.StatusCode != 0 {
		detail["status_code"] = itoa(att.StatusCode)
	}
	if att.Error != "" {
		detail["error"] = att.Error
	}
	for k, v := range extra {
		detail[k] = v
	}
	return wal.AuditEntry{At: d.n.clock.Now().UTC(), Action: action, ObjectType: "event", ObjectID: it.d.EventID, ReplayID: it.d.ReplayID, Detail: detail}
}

// finish records a delivered or dead-lettered entry and drops it from the
// queue. In ordered mode nothing else starts until that is durable, so a
// crash never re-sends an event the receiver already accepted while a later
// one was also sent.
func (d *destination) finish(it *item, status string) {
	if i := slices.Index(d.queue, it); i >= 0 {
		d.queue = slices.Delete(d.queue, i, i+1)
	}
	it.d.Status = status
	it.d.NextAt = time.Time{}
	it.d.UpdatedAt = d.n.clock.Now().UTC()
	b := d.n.db.NewBatch()
	b.DeleteQueue(d.slug, it.qseq)
	b.PutDelivery(it.seq, it.d)
	var att wal.Attempt
	if k := len(it.d.Attempts); k > 0 {
		att = it.d.Attempts[k-1]
	}
	if status == wal.StatusDelivered {
		b.Audit(d.auditAttempt(it, att, "delivery.delivered", nil))
	} else {
		if att.N > 0 {
			b.Audit(d.auditAttempt(it, att, "delivery.attempt_failed", nil))
		}
		b.Audit(d.auditAttempt(it, att, "delivery.dead_lettered", nil))
		d.n.metrics.deadLettered(d.slug)
	}
	d.commit(b, d.cfg.Ordering == model.OrderingOrdered, false)
	if it.d.ReplayID != "" {
		d.n.replayFinished(it.d.ReplayID, it.d.EventID, d.slug, status == wal.StatusDelivered)
	}
}

func (d *destination) stats() DestinationStats {
	s := DestinationStats{InFlight: d.inflight, ConsecutiveFails: d.failures, CircuitOpen: d.failures >= breakerThreshold}
	depth, err := d.n.db.QueueDepth(d.slug)
	if err == nil {
		s.QueueDepth = depth
	}
	if len(d.queue) > 0 {
		q := d.queue[0]
		if q.ev != nil {
			s.OldestPendingAt = q.ev.ReceivedAt
		} else if ev, err := d.n.db.GetEvent(q.part, q.seq); err == nil {
			s.OldestPendingAt = ev.ReceivedAt
		}
	}
	return s
}
