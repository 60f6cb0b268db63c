package actors

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// Messages routed to a destination through the registry.
type (
	// enqueueMsg appends an event to the destination's queue.
	enqueueMsg struct {
		ev         *wal.Event
		part       uint16 // ev's partition and sequence when ev is nil
		seq        uint64
		fromOutbox bool   // delete the event's outbox entry in the same batch
		replayID   string // set for a replay
	}
	// configMsg tells the actor its destination changed or was deleted.
	configMsg struct{}
	// wakeMsg only makes sure the actor is running (recovery, resume).
	wakeMsg struct{}
	// statsMsg asks for the queue's state.
	statsMsg struct{ reply chan DestinationStats }
	// deadExpiredMsg: retention removed n of the destination's dead letters.
	deadExpiredMsg struct{ n int64 }
)

// enqueueMsg's event is ev, or (part, seq) when the sender does not hold
// it (a cluster member's inbox entry): the actor reads it, waiting for
// this replica to apply it if need be.

func (*enqueueMsg) isRouted()    {}
func (configMsg) isRouted()      {}
func (wakeMsg) isRouted()        {}
func (statsMsg) isRouted()       {}
func (deadExpiredMsg) isRouted() {}

// Messages the actor sends itself. Each carries the incarnation that sent
// it: after a restart, what the failed incarnation started is dropped (the
// new one reloaded the queue from disk and decides afresh).
type (
	attemptDone struct {
		inc        uint64
		id         uint64
		started    time.Time
		receivedAt time.Time
		res        delivery.Result
	}
	// attemptSkipped: a chained attempt was not started (see attemptLine).
	attemptSkipped struct{ inc, id uint64 }
	// attemptUnreadable: a chained attempt's event could not be read; it
	// is reported when the line reaches it, in its place.
	attemptUnreadable struct {
		inc, id uint64
		err     string
	}
	committedMsg struct {
		inc, id uint64
		err     error
	}
	timerMsg struct {
		inc uint64
		at  time.Time
	}
)

// DestinationStats is what an operator sees of a destination's queue.
type DestinationStats struct {
	QueueDepth       int       `json:"queue_depth"`
	DeadLetters      int       `json:"dead_letters"`
	InFlight         int       `json:"in_flight"`
	OldestPendingAt  time.Time `json:"oldest_pending_at,omitzero"`
	CircuitOpen      bool      `json:"circuit_open"`
	Circuit          string    `json:"circuit"`
	ConsecutiveFails int       `json:"consecutive_failures"`
}

// localWriter commits a destination's writes through the wal.
type localWriter struct{ db *wal.DB }

func (w localWriter) Write(dest string, ops []destsm.Op, done func(error)) {
	b := w.db.NewBatch()
	for _, op := range ops {
		if AddDestOp(b, dest, op) {
			continue
		}
		switch op := op.(type) {
		case destsm.DeleteOutbox:
			b.DeleteOutbox(op.Part, op.Seq, dest)
		case destsm.Audit:
			b.Audit(wal.AuditEntry{At: op.At, Action: op.Action, ObjectType: "event", ObjectID: op.EventID, ReplayID: op.ReplayID, Detail: op.Detail})
		default:
			b.Discard()
			done(fmt.Errorf("actors: unknown write op %T", op))
			return
		}
	}
	w.db.Commit(b, done)
}

// destination is the actor around one destination's state machine
// (destsm): it feeds the machine its messages and the time, and performs
// what the machine decides. It decides nothing itself.
type destination struct {
	n     *Node
	slug  string
	entry *destEntry
	self  *actor.PID
	inc   uint64 // this incarnation
	m     *destsm.Machine
	gauge *queueGauge

	timer   Timer
	timerAt time.Time

	// A cluster member's actor only (see member.go):
	// dormant: started for a partition this node does not own; it does
	// nothing until it is stopped.
	dormant bool
	// parked: attempts decided while the lease did not hold, started
	// when it does again (parkTimer retries).
	parked    []destsm.StartAttempt
	parkTimer Timer
}

// parkedMsg: try the parked attempts again.
type parkedMsg struct{ inc uint64 }

func (d *destination) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		d.self = ctx.Self()
		d.start()
		ctx.SetReceiveTimeout(d.n.cfg.PassivateAfter)
	case *actor.Restarting, *actor.Stopping:
		d.stopTimer()
		d.unpark()
	case *enqueueMsg:
		d.entry.received.Add(1)
		if !d.dormant {
			d.enqueue(m)
		}
	case configMsg, wakeMsg:
		d.entry.received.Add(1)
		if !d.dormant {
			d.run(d.reconfigure())
		}
	case statsMsg:
		d.entry.received.Add(1)
		if !d.dormant {
			m.reply <- d.stats()
		}
	case deadExpiredMsg:
		d.entry.received.Add(1)
		if !d.dormant {
			d.run(destsm.DeadExpired{N: m.n})
		}
	case orphanMsg:
		d.entry.received.Add(1)
		if !d.dormant && d.n.member != nil {
			d.takeOrphan(m)
		}
	case parkedMsg:
		if m.inc == d.inc {
			d.retryParked()
		}
	case *attemptDone:
		if m.inc != d.inc {
			return
		}
		d.n.metrics.attempt(d.slug, m.res.Success, m.res.Duration)
		if m.res.Success {
			d.n.metrics.delivered(d.n.clock.Now().Sub(m.receivedAt))
		}
		r := m.res
		d.run(destsm.AttemptDone{Attempt: m.id, Started: m.started, Result: destsm.Result{
			Success: r.Success, StatusCode: r.StatusCode, RetryAfter: r.RetryAfter, Duration: r.Duration,
			Response: string(r.Response), Err: r.Err,
		}})
	case attemptSkipped:
		if m.inc == d.inc {
			d.run(destsm.Skipped{Attempt: m.id})
		}
	case attemptUnreadable:
		if m.inc == d.inc {
			d.run(destsm.Unreadable{Attempt: m.id, Err: m.err})
		}
	case committedMsg:
		if m.inc == d.inc {
			d.run(destsm.Committed{Write: m.id, Err: m.err})
		}
	case timerMsg:
		if m.inc == d.inc {
			d.run(destsm.Tick{At: m.at})
		}
	case *actor.ReceiveTimeout:
		if d.dormant {
			return
		}
		if slices.ContainsFunc(d.m.Step(d.n.clock.Now(), destsm.Idle{}), isPassivate) &&
			d.n.dests.passivate(d.slug, d.self) {
			ctx.Stop(d.self)
			return
		}
		// protoactor disarms the timeout when it fires: arm it again.
		ctx.SetReceiveTimeout(d.n.cfg.PassivateAfter)
	}
}

func isPassivate(e destsm.Effect) bool { _, ok := e.(destsm.Passivate); return ok }

// config reads the destination's current configuration.
func (d *destination) config() (model.Destination, bool) {
	c, ok := d.n.Snapshot().Destinations[d.slug]
	return c, ok
}

// start builds the machine from disk. A restart after a failure first waits
// until nothing the failed incarnation wrote can still land, counts the
// queue again (the failed incarnation's last counts may be off) and takes
// what the outbox still holds for this destination, oldest first, before
// any message in the mailbox: the message whose handling failed is lost
// with it, and its event must not be delivered out of order or never.
func (d *destination) start() {
	d.inc = d.entry.incarnations.Add(1)
	restart := d.inc > 1
	d.gauge = d.n.gauges.get(d.slug)
	db := d.n.db
	member := d.n.member != nil
	if member && !d.n.dests.owns(d.slug) {
		// Restarted by its supervisor after the partition was disowned:
		// the registry has stopped it already.
		d.dormant = true
		return
	}
	if restart || member {
		// A member's actor counts on every start: the queue may have moved
		// under another owner since this node last ran it.
		if member {
			d.n.member.Settle(d.slug)
		} else if err := db.WaitCommitted(); err != nil {
			panic(err) // closed: the supervisor gives up with the node
		}
		depth, err := db.QueueDepth(d.slug)
		if err != nil {
			panic(err)
		}
		dead, err := db.CountDead(d.slug)
		if err != nil {
			panic(err)
		}
		d.gauge.set(int64(depth), int64(dead))
	}
	last, err := db.LastQSeq(d.slug)
	if err != nil {
		panic(err) // the supervisor retries; without the queue we must not deliver
	}
	cfg, exists := d.config()
	d.m = destsm.New(destsm.Params{Slug: d.slug, Window: d.n.cfg.QueueWindow, Pipeline: d.n.cfg.OrderedPipeline, DurableSlots: member, Rand: d.n.rand}, destsm.State{
		Dest: cfg, Exists: exists, NextQSeq: last + 1,
		Depth: d.gauge.depth.Load(), Dead: d.gauge.dead.Load(),
	})
	switch {
	case member:
		d.takeOver()
	case restart:
		for _, ev := range d.outbox() {
			d.run(destsm.Enqueue{Part: ev.Partition, Seq: ev.Seq, EventID: ev.ID(), FromOutbox: true, Recovered: true, Payload: ev})
		}
	}
	d.run(destsm.Reconfigure{Dest: cfg, Exists: exists})
}

// takeOver is a cluster member's start: after the queue (which the machine
// loads), the inbox in its partition's log order, then what the outboxes
// still hold for this destination, oldest first. An event that already
// has a delivery record here was taken into the queue by an earlier owner
// whose acknowledgement did not land: it is acknowledged again, not
// queued twice.
func (d *destination) takeOver() {
	inbox, err := d.n.db.ScanInbox(d.slug)
	if err != nil {
		panic(err)
	}
	seen := make(map[uint64]bool, len(inbox))
	for _, e := range inbox {
		seen[e.EventSeq] = true
		d.take(e.EventPart, e.EventSeq)
	}
	for _, e := range d.outboxEntries() {
		if !seen[e.EventSeq] {
			d.take(e.EventPart, e.EventSeq)
		}
	}
}

func (d *destination) take(part uint16, seq uint64) {
	_, err := d.n.db.GetDelivery(d.slug, seq)
	switch {
	case err == nil:
		slug, log := d.slug, d.n.log
		d.n.writer.Write(d.slug, []destsm.Op{destsm.DeleteOutbox{Part: part, Seq: seq}}, func(err error) {
			if err != nil {
				log.Warn("acknowledging an event queued before failed", "destination", slug, "event", wal.EventID(part, seq), "err", err)
			}
		})
		return
	case !errors.Is(err, wal.ErrNotFound):
		panic(err)
	}
	ev := d.event(part, seq)
	d.run(destsm.Enqueue{Part: part, Seq: seq, EventID: ev.ID(), FromOutbox: true, Recovered: true, Payload: ev})
}

// event reads an event. On a cluster member an event named by an inbox or
// a queue entry may not be applied on this replica yet (its partition's
// replica lags the destination's): it waits for it. A single node's events
// are there or unreadable.
func (d *destination) event(part uint16, seq uint64) *wal.Event {
	deadline := time.Now().Add(eventWait)
	for {
		ev, err := d.n.db.GetEvent(part, seq)
		if err == nil || d.n.member == nil || !errors.Is(err, wal.ErrNotFound) {
			if err != nil {
				panic(err)
			}
			return ev
		}
		if time.Now().After(deadline) {
			panic(fmt.Errorf("destination %s: event %s not applied on this replica after %v: %w", d.slug, wal.EventID(part, seq), eventWait, err))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventWait bounds event's wait; past it the actor fails and its restart
// tries again.
const eventWait = 30 * time.Second

// outbox reads what the outbox holds for this destination, oldest first.
func (d *destination) outbox() []*wal.Event {
	entries := d.outboxEntries()
	evs := make([]*wal.Event, 0, len(entries))
	for _, e := range entries {
		ev, err := d.n.db.GetEvent(e.EventPart, e.EventSeq)
		if err != nil {
			panic(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// outboxEntries lists the outbox entries for this destination, oldest
// first.
func (d *destination) outboxEntries() []wal.OutboxEntry {
	var entries []wal.OutboxEntry
	for p := 0; p < d.n.db.Partitions(); p++ {
		err := d.n.db.ScanOutbox(uint16(p), func(e wal.OutboxEntry) {
			if e.Dest == d.slug {
				entries = append(entries, e)
			}
		})
		if err != nil {
			panic(err)
		}
	}
	slices.SortFunc(entries, func(a, b wal.OutboxEntry) int { return cmpUint64(a.EventSeq, b.EventSeq) })
	return entries
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *destination) reconfigure() destsm.Msg {
	cfg, exists := d.config()
	return destsm.Reconfigure{Dest: cfg, Exists: exists}
}

func (d *destination) enqueue(m *enqueueMsg) {
	if m.ev == nil {
		m.ev = d.event(m.part, m.seq)
	}
	if h := d.n.cfg.hooks.enqueue; h != nil {
		h(d.slug, m.ev)
	}
	e := destsm.Enqueue{Part: m.ev.Partition, Seq: m.ev.Seq, EventID: m.ev.ID(), FromOutbox: m.fromOutbox, ReplayID: m.replayID, Payload: m.ev}
	if m.replayID != "" {
		if prior, err := d.n.db.GetDelivery(d.slug, m.ev.Seq); err == nil {
			e.Prior = prior
		} else if !errors.Is(err, wal.ErrNotFound) {
			panic(err)
		}
	}
	d.run(e)
}

// run steps the machine with msg and performs what it decides, feeding the
// outcomes that are known at once (a page read from disk, an unreadable
// event) back in before the next message.
//
// Attempts start before the rest is performed: writes are asynchronous
// anyway, and for an ordered destination the next attempt is on the
// critical path (its predecessor's outcome write is not).
func (d *destination) run(msg destsm.Msg) {
	for pending := []destsm.Msg{msg}; len(pending) > 0; {
		now := d.n.clock.Now()
		effects := d.m.Step(now, pending[0])
		pending = pending[1:]
		for _, attempts := range [2]bool{true, false} {
			for _, e := range effects {
				if _, ok := e.(destsm.StartAttempt); ok != attempts {
					continue
				}
				if next := d.perform(e, now); next != nil {
					pending = append(pending, next)
				}
			}
		}
	}
	d.gauge.set(d.m.Counts())
}

// perform carries out one effect and returns the message that reports its
// outcome when that is known at once.
func (d *destination) perform(e destsm.Effect, now time.Time) destsm.Msg {
	switch e := e.(type) {
	case destsm.Write:
		self, root, inc, id := d.self, d.n.system.Root, d.inc, e.ID
		d.n.writer.Write(d.slug, e.Ops, func(err error) {
			// A stopped store said why once; a line per write would repeat it.
			if err != nil && !errors.Is(err, wal.ErrStopped) {
				d.n.log.Error("destination write failed; restarting its actor", "destination", d.slug, "err", err)
			}
			root.Send(self, committedMsg{inc: inc, id: id, err: err})
		})
	case destsm.Load:
		return d.load(e)
	case destsm.StartAttempt:
		return d.startAttempt(e, now)
	case destsm.Recall:
		d.entry.line.recall(d.inc, e.UpTo)
	case destsm.SetTimer:
		d.setTimer(e.At, now)
	case destsm.DeadLettered:
		d.n.metrics.deadLettered(d.slug)
	case destsm.ReplayFinished:
		d.n.replayFinished(e.ReplayID, e.EventID, d.slug, e.Delivered)
	case destsm.Fail:
		// The supervisor restarts the actor, which reloads from disk.
		panic(fmt.Errorf("destination %s: %w", d.slug, e.Err))
	}
	return nil
}

func (d *destination) load(l destsm.Load) destsm.Msg {
	page, err := d.n.db.QueuePage(d.slug, l.After, l.Limit)
	if err != nil {
		panic(err)
	}
	out := destsm.Loaded{Entries: make([]destsm.Entry, len(page))}
	for i, q := range page {
		e := destsm.Entry{QSeq: q.QSeq, Part: q.EventPart, Seq: q.EventSeq, EventID: wal.EventID(q.EventPart, q.EventSeq)}
		rec, err := d.n.db.GetDelivery(d.slug, q.EventSeq)
		switch {
		case err == nil:
			e.Rec = rec
		case !errors.Is(err, wal.ErrNotFound):
			panic(err)
		}
		out.Entries[i] = e
	}
	return out
}

func (d *destination) startAttempt(s destsm.StartAttempt, now time.Time) destsm.Msg {
	if d.n.member != nil && !d.leased() {
		d.park(s)
		return nil
	}
	cfg, _ := d.config()
	ordered := s.After != 0 || cfg.WithDefaults().Ordering == model.OrderingOrdered
	ev, _ := s.Payload.(*wal.Event)
	var unreadable string
	if ev == nil {
		if d.n.member != nil {
			ev = d.event(s.Part, s.Seq)
		} else {
			var err error
			if ev, err = d.n.db.GetEvent(s.Part, s.Seq); err != nil {
				d.n.log.Error("queued event unreadable; dead-lettering it", "destination", d.slug, "event", s.EventID, "err", err)
				if s.After == 0 {
					return destsm.Unreadable{Attempt: s.ID, Err: err.Error()}
				}
				// Chained: the ones ahead of it are still to go, and it
				// is reported in its place.
				unreadable = err.Error()
			}
		}
	}
	if !d.n.beginAttempt() {
		return nil // shutting down: the entry stays queued on disk
	}
	self, n, inc := d.self, d.n, d.inc
	if !ordered {
		n.workers.Schedule(func() {
			defer n.attempts.Done()
			n.deliver(self, inc, s, now, cfg, ev)
		})
		return nil
	}
	skipped := func() { n.system.Root.Send(self, attemptSkipped{inc: inc, id: s.ID}) }
	j := lineJob{inc: inc, id: s.ID, after: s.After, skipped: skipped,
		run: func() bool {
			if n.member != nil && !d.leased() {
				// The lease went while it waited on the line: not
				// started. The machine hands it over again, and it is
				// parked until the lease holds.
				skipped()
				return false
			}
			return n.deliver(self, inc, s, n.clock.Now(), cfg, ev)
		},
	}
	if unreadable != "" {
		j.run = func() bool {
			n.system.Root.Send(self, attemptUnreadable{inc: inc, id: s.ID, err: unreadable})
			return false
		}
	}
	d.entry.line.add(n, d.entry, j)
	return nil
}

// deliver makes attempt s of event ev, started at started, and reports it
// to the destination actor self (incarnation inc). It reports whether the
// receiver answered 2xx.
func (n *Node) deliver(self *actor.PID, inc uint64, s destsm.StartAttempt, started time.Time, cfg model.Destination, ev *wal.Event) bool {
	req := delivery.Request{EventID: s.EventID, Attempt: s.N, Headers: ev.Headers, Body: ev.Body, ReplayID: s.ReplayID}
	// The client bounds the attempt by the destination's timeout; a context
	// with a timer of its own per attempt cost 1.5% of the CPU under bench
	// e2e --max.
	res := n.deliverer.Deliver(n.ctx, cfg, req)
	n.system.Root.Send(self, &attemptDone{inc: inc, id: s.ID, started: started, receivedAt: ev.ReceivedAt, res: res})
	return res.Success
}

// leased reports whether a cluster member's actor may start an attempt:
// the member holds the partition's lease and this actor is still the
// destination's (not one stopped by a Disown that has not ended yet).
func (d *destination) leased() bool {
	return d.n.member.Leased(d.n.db.DestPartition(d.slug)) && d.n.dests.current(d.slug, d.entry)
}

// parkEvery is how often parked attempts try the lease again.
const parkEvery = 20 * time.Millisecond

func (d *destination) park(s destsm.StartAttempt) {
	d.parked = append(d.parked, s)
	d.armPark()
}

// armPark schedules the next try of the parked attempts, unless one is
// scheduled already.
func (d *destination) armPark() {
	if d.parkTimer == nil {
		self, root, inc := d.self, d.n.system.Root, d.inc
		d.parkTimer = d.n.clock.AfterFunc(parkEvery, func() { root.Send(self, parkedMsg{inc: inc}) })
	}
}

func (d *destination) unpark() {
	if d.parkTimer != nil {
		d.parkTimer.Stop()
		d.parkTimer = nil
	}
	d.parked = nil
}

// retryParked starts the parked attempts, in the order they were decided,
// if the lease holds now; otherwise they wait for the next try.
func (d *destination) retryParked() {
	d.parkTimer = nil
	parked := d.parked
	d.parked = nil
	for i, s := range parked {
		if !d.leased() {
			d.parked = append(d.parked, parked[i:]...)
			break
		}
		if msg := d.startAttempt(s, d.n.clock.Now()); msg != nil {
			d.run(msg)
		}
	}
	if len(d.parked) > 0 {
		d.armPark()
	}
	d.gauge.set(d.m.Counts())
}

func (d *destination) setTimer(at, now time.Time) {
	d.stopTimer()
	d.timerAt = at
	if at.IsZero() {
		return
	}
	self, root, inc := d.self, d.n.system.Root, d.inc
	d.timer = d.n.clock.AfterFunc(at.Sub(now), func() { root.Send(self, timerMsg{inc: inc, at: at}) })
}

func (d *destination) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

func (d *destination) stats() DestinationStats {
	st := d.m.Stats()
	s := DestinationStats{
		QueueDepth: int(st.Depth), DeadLetters: int(st.Dead), InFlight: st.InFlight,
		ConsecutiveFails: st.ConsecutiveFailures, CircuitOpen: st.Breaker != destsm.BreakerClosed, Circuit: st.Breaker.String(),
	}
	if st.HasHead {
		if ev, ok := st.HeadPayload.(*wal.Event); ok && ev != nil {
			s.OldestPendingAt = ev.ReceivedAt
		} else if ev, err := d.n.db.GetEvent(st.HeadPart, st.HeadSeq); err == nil {
			s.OldestPendingAt = ev.ReceivedAt
		}
	}
	return s
}

// queueGauge is one destination's queue depth and dead-letter count, as its
// actor last saw them durable. Only the actor writes it; /metrics reads it
// without asking the actor or the store, so a scrape costs the same
// whatever the backlog. It outlives the actor (passivation keeps it).
type queueGauge struct {
	depth, dead atomic.Int64
}

func (g *queueGauge) set(depth, dead int64) {
	g.depth.Store(depth)
	g.dead.Store(dead)
}
