package destsm

import (
	"slices"
	"strconv"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// BreakerThreshold consecutive failed attempts open the circuit.
const BreakerThreshold = 5

// Breaker is the circuit breaker's state.
type Breaker uint8

const (
	// BreakerClosed: attempts run up to the destination's limit.
	BreakerClosed Breaker = iota
	// BreakerOpen: BreakerThreshold attempts in a row failed; the next one
	// due is the probe, and nothing else starts beside it.
	BreakerOpen
	// BreakerProbing: the circuit is open and its probe is in flight. A
	// success closes it; a failure leaves it open.
	BreakerProbing
)

func (b Breaker) String() string {
	switch b {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerProbing:
		return "probing"
	}
	return "Breaker(" + strconv.Itoa(int(b)) + ")"
}

// Params are fixed for a machine's life.
type Params struct {
	Slug string
	// Window is how many queue entries the machine holds in memory; the
	// rest stay on disk and are loaded in queue order.
	Window int
	// Rand returns a uniform value in [0, n): the jitter of every backoff
	// comes from it, so a test fixes it. nil means math/rand/v2.
	Rand func(n int64) int64
	// Pipeline is how many events of an ordered destination may be
	// handed to the shell (chained attempts) or finished with their
	// outcome not yet durable, together. The next event starts as soon as
	// the last one's 2xx is in, and its outcome joins a later group
	// commit; after a crash the ones whose outcome was not durable yet are
	// sent again, in order, so a crash re-sends at most Pipeline events.
	// 1 waits for each outcome before the next attempt; below 1 means
	// DefaultPipeline.
	Pipeline int
	// DurableSlots: a parallel destination's attempt keeps its place among
	// max_in_flight until its outcome is durable, not only until its
	// answer is in. Then a crash or a failover sends again at most
	// max_in_flight events (those in flight and those whose outcome was on
	// its way to disk), at the cost of each place being held one write
	// longer. A cluster member sets it.
	DurableSlots bool
}

// MaxChained is how many attempts an ordered destination hands over ahead
// (chained, StartAttempt.After) at most: enough that the shell need not
// wait for the machine between two events, few enough that a pause or
// another change of the destination is not kept waiting behind a long
// line.
const MaxChained = 16

// DefaultPipeline is Params.Pipeline's default: enough deliveries to cover
// the latency of their outcomes' group commits at a few thousand a second,
// through the tens of milliseconds a busy disk sometimes takes.
const DefaultPipeline = 256

// State is what the machine starts from, read from disk by the shell.
type State struct {
	Dest   model.Destination
	Exists bool
	// NextQSeq is one past the highest queue sequence on disk.
	NextQSeq uint64
	// Depth and Dead are the queue's length and the dead-letter count on
	// disk. The shell counts them once, when the node starts (or when this
	// destination's actor restarts after a failure); from then on the
	// machine keeps them, moving them only when a write is durable.
	Depth, Dead int64
}

// item is one queue entry held in memory.
type item struct {
	qseq    uint64
	part    uint16
	seq     uint64
	rec     model.Delivery
	payload any
	attempt uint64 // id of the attempt in flight, 0 when none
	nextAt  time.Time
}

// pendingWrite is a Write whose outcome has not come back.
type pendingWrite struct {
	outcome     bool  // records a finished delivery of an ordered destination
	finished    *item // the entry whose outcome it records, if any
	refill      bool  // entries it appends did not fit in memory
	depth, dead int64 // what it changes on disk
}

type outboxKey struct {
	part uint16
	seq  uint64
}

// Machine decides everything a destination does: what to write, which
// attempt to start, when to wake up. It does no I/O, starts no goroutine
// and reads no clock; the shell around it performs its effects and feeds
// their outcomes back as messages. It is not safe for concurrent use.
type Machine struct {
	p      Params
	dest   model.Destination // defaults applied
	exists bool

	queue   []*item // every pending entry with qseq <= memHigh, in qseq order
	memHigh uint64
	// spare holds the events (Enqueue.Payload) of entries appended while
	// the window was behind the queue on disk, by queue sequence, so the
	// page that brings them in carries them and the shell need not read
	// them back. With the queue, at most Window entries.
	spare    map[uint64]any
	nextQSeq uint64
	loading  bool // a Load is out
	drained  bool // the last Load came back short: wait for a refill write

	inflight int
	// chainTail is the last attempt started in ordered mode while it is in
	// flight, 0 otherwise: the next ordered attempt may be chained to it
	// (StartAttempt.After).
	chainTail uint64
	failures  int // consecutive failed attempts
	lastStart time.Time
	lastWrite uint64 // ids of writes and attempts, from 1
	lastTry   uint64

	writes   map[uint64]pendingWrite
	outcomes int // outstanding outcome writes (ordered; parallel with DurableSlots)
	failed   bool

	timerAt time.Time

	depth, dead int64

	// taken holds the outbox entries the shell recovered at start whose
	// own messages may still arrive.
	taken map[outboxKey]struct{}
	// finishing holds entries whose outcome is decided but not yet durable:
	// the disk still says pending, and a replay must not believe it.
	finishing map[outboxKey]*item

	out []Effect
}

// New returns a machine starting from s. It emits nothing until the first
// Step.
func New(p Params, s State) *Machine {
	if p.Window < 1 {
		p.Window = 1
	}
	if p.Pipeline < 1 {
		p.Pipeline = DefaultPipeline
	}
	m := &Machine{
		p:         p,
		nextQSeq:  max(s.NextQSeq, 1),
		depth:     s.Depth,
		dead:      s.Dead,
		writes:    map[uint64]pendingWrite{},
		spare:     map[uint64]any{},
		taken:     map[outboxKey]struct{}{},
		finishing: map[outboxKey]*item{},
	}
	m.configure(s.Dest, s.Exists)
	return m
}

func (m *Machine) configure(d model.Destination, exists bool) {
	m.dest, m.exists = d.WithDefaults(), exists
}

// Step feeds one message at time now and returns what to do, in order.
// The slice is valid until the next Step.
func (m *Machine) Step(now time.Time, msg Msg) []Effect {
	m.out = m.out[:0]
	if m.failed {
		return nil
	}
	switch msg := msg.(type) {
	case Enqueue:
		m.enqueue(now, msg)
	case Loaded:
		m.loaded(msg)
	case AttemptDone:
		m.attemptDone(now, msg)
	case Skipped:
		if m.inflightItem(msg.Attempt) != nil {
			m.chainTail = 0
		}
	case Unreadable:
		m.unreadable(now, msg)
	case Committed:
		m.committed(msg)
	case Tick:
		if !msg.At.Equal(m.timerAt) {
			return nil // a timer replaced since
		}
		m.timerAt = time.Time{}
	case Reconfigure:
		m.configure(msg.Dest, msg.Exists)
		m.recall()
	case DeadExpired:
		m.dead = max(m.dead-msg.N, 0)
	case Idle:
		if m.idle() {
			m.emit(Passivate{})
		}
		return m.out
	}
	if !m.failed {
		m.pump(now)
	}
	return m.out
}

func (m *Machine) emit(e Effect) { m.out = append(m.out, e) }

// idle reports whether nothing is in memory, in flight, being written or
// waiting on disk.
func (m *Machine) idle() bool {
	return len(m.queue) == 0 && m.inflight == 0 && len(m.writes) == 0 && m.memHigh+1 >= m.nextQSeq && !m.loading
}

// write emits a Write of ops and remembers what it changes.
func (m *Machine) write(ops []Op, w pendingWrite) {
	m.lastWrite++
	m.writes[m.lastWrite] = w
	if w.outcome {
		m.outcomes++
	}
	m.emit(Write{ID: m.lastWrite, Ops: ops})
}

func (m *Machine) committed(c Committed) {
	w, ok := m.writes[c.Write]
	if !ok {
		return
	}
	if c.Err != nil {
		// What is in memory is no longer what is on disk, and in ordered
		// mode nothing may go on as if the outcome were durable: stop; a
		// new machine starts from disk and sends again what was not.
		m.failed = true
		m.out = append(m.out[:0], Fail{Err: c.Err})
		return
	}
	delete(m.writes, c.Write)
	m.depth += w.depth
	m.dead += w.dead
	if w.outcome {
		m.outcomes--
	}
	if it := w.finished; it != nil && m.finishing[outboxKey{it.part, it.seq}] == it {
		delete(m.finishing, outboxKey{it.part, it.seq})
	}
	if w.refill {
		m.drained = false
		m.refill()
	}
}

func (m *Machine) enqueue(now time.Time, e Enqueue) {
	key := outboxKey{e.Part, e.Seq}
	switch {
	case e.Recovered:
		if _, again := m.taken[key]; again {
			// Taken from the outbox twice (at a takeover, then as an
			// orphan before the first one's write landed): once is enough.
			return
		}
		m.taken[key] = struct{}{}
	case e.FromOutbox:
		if _, ok := m.taken[key]; ok {
			delete(m.taken, key) // already taken from the outbox at start
			return
		}
	}
	rec := model.Delivery{Destination: m.p.Slug, EventID: e.EventID, Status: model.StatusPending, UpdatedAt: now.UTC()}
	var ops []Op
	w := pendingWrite{depth: 1}
	if e.ReplayID != "" {
		if i := slices.IndexFunc(m.queue, func(it *item) bool { return it.part == e.Part && it.seq == e.Seq }); i >= 0 {
			// Already pending in memory: the replay rides on it.
			m.queue[i].rec.ReplayID = e.ReplayID
			return
		}
		if it, ok := m.finishing[key]; ok {
			// Finished, its outcome still on its way to disk: that outcome,
			// not the pending record the disk still holds, is the prior.
			e.Prior = &it.rec
		}
		if p := e.Prior; p != nil {
			if p.Status == model.StatusPending {
				// Pending on disk beyond the window: the replay rides on
				// it. Its record carries the replay's id, so the outcome
				// reaches the replay when it finishes.
				rec := *p
				rec.ReplayID = e.ReplayID
				m.write([]Op{PutDelivery{Seq: e.Seq, Rec: rec}}, pendingWrite{})
				return
			}
			rec.Attempts = p.Attempts
			rec.AttemptsBase = len(p.Attempts)
			if p.Status == model.StatusDead {
				ops = append(ops, DeleteDead{Seq: e.Seq})
				w.dead = -1
			}
		}
		rec.ReplayID = e.ReplayID
	}
	qseq := m.nextQSeq
	m.nextQSeq++
	rec.QSeq = qseq
	if e.ReplayID != "" {
		ops = append(ops, PutDelivery{Seq: e.Seq, Rec: rec})
	}
	ops = append(ops, PutQueue{QSeq: qseq, Part: e.Part, Seq: e.Seq})
	if e.FromOutbox {
		ops = append(ops, DeleteOutbox{Part: e.Part, Seq: e.Seq})
	}
	if m.memHigh+1 == qseq && len(m.queue) < m.p.Window {
		m.queue = append(m.queue, &item{qseq: qseq, part: e.Part, seq: e.Seq, rec: rec, payload: e.Payload})
		m.memHigh = qseq
	} else {
		w.refill = true
		if e.Payload != nil && qseq <= m.memHigh+uint64(m.p.Window) && len(m.queue)+len(m.spare) < m.p.Window {
			m.spare[qseq] = e.Payload
		}
	}
	m.write(ops, w)
}

// refill asks for queue entries from disk while the window has room.
func (m *Machine) refill() {
	if m.loading || m.drained || m.memHigh+1 >= m.nextQSeq || len(m.queue) >= m.p.Window {
		return
	}
	m.loading = true
	m.emit(Load{After: m.memHigh, Limit: m.p.Window - len(m.queue)})
}

func (m *Machine) loaded(l Loaded) {
	m.loading = false
	for _, e := range l.Entries {
		payload, ok := m.spare[e.QSeq]
		if ok {
			delete(m.spare, e.QSeq)
		}
		if e.QSeq <= m.memHigh {
			continue // never expected: entries come after memHigh
		}
		rec := model.Delivery{Destination: m.p.Slug, EventID: e.EventID, Status: model.StatusPending}
		if e.Rec != nil {
			rec = *e.Rec
		}
		rec.QSeq = e.QSeq
		m.queue = append(m.queue, &item{qseq: e.QSeq, part: e.Part, seq: e.Seq, rec: rec, nextAt: rec.NextAt, payload: payload})
		m.memHigh = e.QSeq
	}
	if len(m.queue) < m.p.Window && m.memHigh+1 < m.nextQSeq {
		// Short of what the sequence promises: the rest is still being
		// written, and the write that appended it refills.
		m.drained = true
	}
}

// limit is how many attempts may be in flight now.
//
// An ordered destination chains its attempts: each one after the first is
// handed over with StartAttempt.After set to the one before it, and the
// shell starts it only once that one got its 2xx, so nothing goes out of
// order while the shell never waits for the machine between two events. An
// attempt in flight may be sent again after a crash just like an outcome
// on its way to disk, so the two together stay within Params.Pipeline.
// After a failure, or with a rate limit (which spaces starts by the clock),
// one attempt runs at a time.
func (m *Machine) limit() int {
	if m.dest.Ordering == model.OrderingOrdered {
		if m.failures > 0 || m.dest.RateLimit > 0 {
			return 1
		}
		return min(MaxChained, m.p.Pipeline-m.outcomes)
	}
	if m.failures >= BreakerThreshold {
		return 1
	}
	return m.dest.MaxInFlight
}

// pump starts every attempt that is due and allowed, and sets the timer
// for the next one.
func (m *Machine) pump(now time.Time) {
	if len(m.queue) < m.p.Window/2 || len(m.queue) == 0 {
		m.refill()
	}
	ordered := m.dest.Ordering == model.OrderingOrdered
	if !m.exists || m.dest.Paused || (ordered && m.outcomes >= m.p.Pipeline) {
		m.setTimer(time.Time{})
		return
	}
	limit := m.limit()
	held := 0 // places held by outcomes on their way to disk
	if !ordered && m.p.DurableSlots {
		held = m.outcomes
	}
	var wake time.Time
	for _, it := range m.queue {
		if m.inflight+held >= limit {
			break
		}
		if it.attempt != 0 {
			continue
		}
		if ordered && m.inflight > 0 && m.chainTail == 0 {
			// What is in flight is no chain to join (a failed one's
			// followers not reported yet, or attempts from parallel
			// mode): wait for it.
			break
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
		if m.dest.RateLimit > 0 {
			gap := time.Duration(float64(time.Second) / m.dest.RateLimit)
			if next := m.lastStart.Add(gap); next.After(now) {
				wake = next
				break
			}
		}
		m.start(it, now)
	}
	m.setTimer(wake)
}

// recall takes back the chained attempts of an ordered destination that
// have not started, when its configuration changes: a pause, a deletion or
// a new URL applies from the next event on, not after the line handed
// over. The shell reports each one it did not start as Skipped; nothing
// joins the recalled chain.
func (m *Machine) recall() {
	if m.chainTail != 0 && m.inflight > 1 {
		m.emit(Recall{UpTo: m.lastTry})
		m.chainTail = 0
	}
}

func (m *Machine) setTimer(at time.Time) {
	if at.Equal(m.timerAt) {
		return
	}
	m.timerAt = at
	m.emit(SetTimer{At: at})
}

func (m *Machine) start(it *item, now time.Time) {
	m.lastTry++
	it.attempt = m.lastTry
	m.inflight++
	m.lastStart = now
	s := StartAttempt{ID: it.attempt, QSeq: it.qseq, Part: it.part, Seq: it.seq, EventID: it.rec.EventID,
		N: len(it.rec.Attempts) + 1, ReplayID: it.rec.ReplayID, Payload: it.payload}
	if m.dest.Ordering == model.OrderingOrdered {
		s.After = m.chainTail
		m.chainTail = it.attempt
	} else {
		m.chainTail = 0
	}
	m.emit(s)
}

// inflightItem finds the item an attempt belongs to and ends the attempt.
// Reports nil for an attempt it does not know.
func (m *Machine) inflightItem(id uint64) *item {
	if id == 0 {
		return nil
	}
	i := slices.IndexFunc(m.queue, func(it *item) bool { return it.attempt == id })
	if i < 0 {
		return nil
	}
	it := m.queue[i]
	if it.attempt == m.chainTail {
		m.chainTail = 0
	}
	it.attempt = 0
	m.inflight--
	return it
}

func (m *Machine) attemptDone(now time.Time, d AttemptDone) {
	it := m.inflightItem(d.Attempt)
	if it == nil {
		return
	}
	res := d.Result
	att := model.Attempt{
		N:          len(it.rec.Attempts) + 1,
		At:         d.Started.UTC(),
		DurationMS: float64(res.Duration.Microseconds()) / 1000,
		StatusCode: res.StatusCode,
		Response:   res.Response,
		Error:      res.Err,
		ReplayID:   it.rec.ReplayID,
	}
	it.rec.Attempts = append(it.rec.Attempts, att)
	if res.Success {
		m.failures = 0
		m.finish(it, model.StatusDelivered, now)
		return
	}
	m.failures++
	m.chainTail = 0 // what was chained to it is skipped
	round := len(it.rec.Attempts) - it.rec.AttemptsBase
	if round >= m.dest.MaxAttempts {
		m.finish(it, model.StatusDead, now)
		return
	}
	it.nextAt = now.Add(NextDelay(round, m.dest, res, m.p.Rand))
	it.rec.NextAt = it.nextAt.UTC()
	it.rec.UpdatedAt = now.UTC()
	m.write([]Op{
		PutDelivery{Seq: it.seq, Rec: it.rec},
		m.audit(it, att, "delivery.attempt_failed", now, "next_attempt_at", it.rec.NextAt.Format(time.RFC3339Nano)),
	}, pendingWrite{})
}

func (m *Machine) unreadable(now time.Time, u Unreadable) {
	it := m.inflightItem(u.Attempt)
	if it == nil {
		return
	}
	m.chainTail = 0 // what was chained to it is skipped
	it.rec.Attempts = append(it.rec.Attempts, model.Attempt{N: len(it.rec.Attempts) + 1, At: now.UTC(), Error: "event unreadable: " + u.Err})
	m.finish(it, model.StatusDead, now)
}

// finish records a delivered or dead-lettered entry and drops it from the
// queue. In ordered mode the next entry may start at once, while this
// outcome joins the next group commit; at most Params.Pipeline outcomes
// wait at a time, which bounds what a crash re-sends.
func (m *Machine) finish(it *item, status string, now time.Time) {
	if i := slices.Index(m.queue, it); i >= 0 {
		m.queue = slices.Delete(m.queue, i, i+1)
	}
	it.rec.Status = status
	it.rec.NextAt = time.Time{}
	it.rec.UpdatedAt = now.UTC()
	ops := []Op{DeleteQueue{QSeq: it.qseq, Seq: it.seq}, PutDelivery{Seq: it.seq, Rec: it.rec}}
	w := pendingWrite{outcome: m.dest.Ordering == model.OrderingOrdered || m.p.DurableSlots, depth: -1, finished: it}
	m.finishing[outboxKey{it.part, it.seq}] = it
	last := it.rec.Attempts[len(it.rec.Attempts)-1]
	if status == model.StatusDelivered {
		ops = append(ops, m.audit(it, last, "delivery.delivered", now))
	} else {
		ops = append(ops,
			m.audit(it, last, "delivery.attempt_failed", now),
			m.audit(it, last, "delivery.dead_lettered", now))
		w.dead = 1
	}
	m.write(ops, w)
	if status == model.StatusDead {
		m.emit(DeadLettered{EventID: it.rec.EventID})
	}
	if it.rec.ReplayID != "" {
		m.emit(ReplayFinished{ReplayID: it.rec.ReplayID, EventID: it.rec.EventID, Delivered: status == model.StatusDelivered})
	}
}

func (m *Machine) audit(it *item, att model.Attempt, action string, now time.Time, extra ...string) Audit {
	detail := map[string]string{"destination": m.p.Slug, "attempt": strconv.Itoa(att.N)}
	if att.StatusCode != 0 {
		detail["status_code"] = strconv.Itoa(att.StatusCode)
	}
	if att.Error != "" {
		detail["error"] = att.Error
	}
	for i := 0; i+1 < len(extra); i += 2 {
		detail[extra[i]] = extra[i+1]
	}
	return Audit{At: now.UTC(), Action: action, EventID: it.rec.EventID, ReplayID: it.rec.ReplayID, Detail: detail}
}

// Counts returns the queue depth and dead-letter count, as durable.
func (m *Machine) Counts() (depth, dead int64) { return m.depth, m.dead }

// Stats is what an operator sees of the machine.
type Stats struct {
	Depth, Dead         int64
	InFlight            int
	ConsecutiveFailures int
	Breaker             Breaker
	// Head is the oldest entry in memory; HeadPayload its Enqueue.Payload
	// (nil when it was loaded from disk). HasHead is false for an empty
	// queue.
	HasHead     bool
	HeadPart    uint16
	HeadSeq     uint64
	HeadPayload any
}

// Stats reports the machine's counters.
func (m *Machine) Stats() Stats {
	s := Stats{Depth: m.depth, Dead: m.dead, InFlight: m.inflight, ConsecutiveFailures: m.failures, Breaker: m.breaker()}
	if len(m.queue) > 0 {
		h := m.queue[0]
		s.HasHead, s.HeadPart, s.HeadSeq, s.HeadPayload = true, h.part, h.seq, h.payload
	}
	return s
}

func (m *Machine) breaker() Breaker {
	switch {
	case m.failures < BreakerThreshold:
		return BreakerClosed
	case m.inflight > 0:
		return BreakerProbing
	}
	return BreakerOpen
}
