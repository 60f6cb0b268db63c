package actors

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// Replays run in the engine. A replay is recorded (wal.KindReplay) with
// its replay.requested audit entry before StartReplay returns; a scan
// goroutine then collects its events, oldest first, and hands each (event,
// destination) pair to the replay coordinator, an actor that owns every
// running replay's tally. The coordinator records the pair as outstanding
// and only then enqueues it at the destination, so no completion can
// arrive before its pair is known. Destinations report a replayed delivery
// that finished (delivered or dead-lettered) with a message to the
// coordinator; a delivery that several replays rode on finishes all of
// them. A deleted destination finishes its outstanding pairs as failed.
// Nothing polls delivery records.
//
// On a cluster member a replay runs where its destinations are delivered
// (replayHere). A replay over destinations that several members deliver
// is split by the admin API (admin/peers.go) into one part per member,
// each recorded under the same id with the destinations it covers
// (model.Replay.Destinations); the scan skips pairs of other members'
// destinations.

// maxOutstanding bounds how many pairs one replay has sent and not yet
// seen finish; past it, its scan waits. It keeps a replay of millions of
// events from flooding the destination mailboxes.
const maxOutstanding = 50_000

// replayPersistEvery is how often a running replay's progress is saved.
const replayPersistEvery = time.Second

// replays is the node's part of the replay engine: the coordinator's pid
// and the scan goroutines.
type replays struct {
	n   *Node
	pid *actor.PID

	mu      sync.Mutex // guards closing against scans.Add
	closing bool
	scans   sync.WaitGroup
	done    chan struct{} // closed when scans must stop
}

type pairKey struct{ event, dest string }

// replayRun is one running replay, owned by the coordinator.
type replayRun struct {
	rec         model.Replay
	outstanding map[pairKey]struct{}
	dirty       bool // rec changed since last saved
	// slots is the scan's budget of outstanding pairs: the scan puts one
	// in for each pair it sends, the coordinator takes one out when a
	// pair finishes or is skipped.
	slots chan struct{}
}

// release gives a finished or skipped pair's slot back to the scan.
func (run *replayRun) release() {
	select {
	case <-run.slots:
	default:
	}
}

// Coordinator messages.
type (
	// replayBeginMsg registers a replay whose record is durable.
	replayBeginMsg struct{ run *replayRun }
	// replayCollectedMsg: the scan found events events to replay.
	replayCollectedMsg struct {
		id     string
		events int
	}
	// replayPairMsg: the scan asks for ev to be replayed to dest.
	replayPairMsg struct {
		id   string
		ev   *wal.Event
		dest string
	}
	// replayScannedMsg: the scan is over; err is why it failed.
	replayScannedMsg struct {
		id  string
		err error
	}
	// replayFinishedMsg: a destination finished a replayed delivery.
	replayFinishedMsg struct {
		replayID, eventID, dest string
		delivered               bool
	}
	// replayDestsGoneMsg: these destinations were deleted.
	replayDestsGoneMsg struct{ dests []string }
	// replayPersistMsg: time to save the progress of running replays.
	replayPersistMsg struct{}
	// replayGetMsg asks for a running replay's tally; ok is false when it
	// is not running.
	replayGetMsg struct {
		id    string
		reply chan replayGetReply
	}
	replayCountMsg struct{ reply chan int }
)

type replayGetReply struct {
	rec model.Replay
	ok  bool
}

// startReplays marks the replays a previous run left unfinished as failed
// and starts the coordinator.
func startReplays(n *Node) (*replays, error) {
	if err := failInterruptedReplays(n); err != nil {
		return nil, err
	}
	r := &replays{n: n, done: make(chan struct{})}
	props := actor.PropsFromProducer(func() actor.Actor {
		return &replayCoordinator{n: n, runs: map[string]*replayRun{}, waiting: map[pairKey][]*replayRun{}}
	}, actor.WithGuardian(supervision()))
	r.pid = n.system.Root.Spawn(props)
	return r, nil
}

// failInterruptedReplays: a replay that was queued or running when the
// node stopped lost its in-memory tally, so it is marked failed, saying
// so. The deliveries it queued still happen (they are durable in the
// destination queues).
func failInterruptedReplays(n *Node) error {
	var stale []model.Replay
	err := n.db.LoadConfig(wal.KindReplay, func(id string, raw []byte) error {
		var r model.Replay
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%w: replay %q", wal.ErrCorrupt, id)
		}
		if !r.Status.Finished() {
			stale = append(stale, r)
		}
		return nil
	})
	if err != nil || len(stale) == 0 {
		return err
	}
	now := n.clock.Now().UTC()
	b := n.db.NewBatch()
	for _, r := range stale {
		r.Status = model.ReplayFailed
		r.FinishedAt = now
		r.Error = fmt.Sprintf("interrupted by a restart after %d of %d deliveries finished (scan complete: %v); deliveries already queued still run; start a new replay for the rest",
			r.Succeeded+r.Failed, r.Total, r.ScanDone)
		if err := b.PutConfig(wal.KindReplay, r.ID, r); err != nil {
			b.Discard()
			return err
		}
		b.Audit(wal.AuditEntry{At: now, Action: "replay.failed", ObjectType: "replay", ObjectID: r.ID, ReplayID: r.ID,
			Detail: map[string]string{"error": r.Error}})
	}
	return n.db.CommitWait(b)
}

// stopScans stops the scan goroutines and waits for them. The replays
// they belong to stay running in the store and read as interrupted after
// a restart.
func (r *replays) stopScans() {
	r.mu.Lock()
	if !r.closing {
		r.closing = true
		close(r.done)
	}
	r.mu.Unlock()
	r.scans.Wait()
}

// stop stops the coordinator, which saves the progress of every running
// replay. Call it after the destinations have stopped.
func (r *replays) stop() {
	r.stopScans()
	r.n.system.Root.StopFuture(r.pid).Wait()
}

// NewReplayID makes a replay id (model.ValidReplayID): the time, then
// random bits. A cluster member that splits a replay among the members
// delivering its destinations gives every part this one id.
func NewReplayID(now time.Time) string { return newReplayID(now) }

func newReplayID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("rpl_%016x%08x", uint64(now.UnixNano()), binary.BigEndian.Uint32(b[:]))
}

// StartReplay records rec as a queued replay, with its replay.requested
// audit entry (on objType/objID, the replay itself when empty), and runs
// it in the background. It returns once the record is durable. rec says
// what to replay: EventID (one event), DeadLetters of Destination (with
// EventIDs or Filter narrowing them), or the events matching Filter;
// Destination, when set, is the only destination replayed to;
// Destinations, when set, are the only ones (a cluster member's part). An
// id already set (a part of a replay another member split) is kept; one
// of another form, or one recorded here already, is refused.
func (n *Node) StartReplay(rec model.Replay, objType, objID string) (model.Replay, error) {
	if err := n.replayHere(rec); err != nil {
		return model.Replay{}, err
	}
	r := n.replays
	switch {
	case rec.ID == "":
		rec.ID = newReplayID(n.clock.Now())
	case !model.ValidReplayID(rec.ID):
		return model.Replay{}, &model.FieldError{Field: "id", Message: fmt.Sprintf("%q is not a replay id", rec.ID)}
	default:
		if _, err := n.db.GetConfig(wal.KindReplay, rec.ID); err == nil {
			// A forwarded part asked again (its first answer was lost to a
			// timeout) is the one already running; anything else under
			// the id is a conflict.
			if had, err := n.Replay(rec.ID); err == nil && samePart(had, rec) {
				return had, nil
			}
			return model.Replay{}, fmt.Errorf("%w: replay %s is recorded on this node already", ErrConflict, rec.ID)
		} else if !errors.Is(err, wal.ErrNotFound) {
			return model.Replay{}, err
		}
	}
	rec.Members = nil
	rec.Status = model.ReplayQueued
	rec.CreatedAt = n.clock.Now().UTC()
	if objType == "" {
		objType, objID = "replay", rec.ID
	}
	b := n.db.NewBatch()
	if err := b.PutConfig(wal.KindReplay, rec.ID, rec); err != nil {
		b.Discard()
		return model.Replay{}, err
	}
	b.Audit(wal.AuditEntry{At: rec.CreatedAt, Action: "replay.requested", ObjectType: objType, ObjectID: objID,
		Actor: rec.RequestedBy, ReplayID: rec.ID, Detail: replayDetail(&rec)})
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		b.Discard()
		return model.Replay{}, fmt.Errorf("%w: the node is shutting down", ErrUnavailable)
	}
	r.scans.Add(1)
	r.mu.Unlock()
	if err := n.db.CommitWait(b); err != nil {
		r.scans.Done()
		return model.Replay{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	run := &replayRun{rec: rec, outstanding: map[pairKey]struct{}{}, slots: make(chan struct{}, maxOutstanding)}
	n.system.Root.Send(r.pid, &replayBeginMsg{run: run})
	go r.scan(rec, run.slots)
	return rec, nil
}

func replayDetail(rec *model.Replay) map[string]string {
	detail := map[string]string{}
	if rec.Reason != "" {
		detail["reason"] = rec.Reason
	}
	if rec.Destination != "" {
		detail["destination"] = rec.Destination
	}
	if rec.Filter != nil {
		f, _ := json.Marshal(rec.Filter)
		detail["filter"] = string(f)
	}
	if rec.DeadLetters {
		detail["dead_letters"] = "true"
	}
	return detail
}

// replayHere refuses, on a cluster member, a replay it could not carry
// out: a replay runs where its destinations are delivered (the member
// leading their partitions), so it must name its destinations
// (Destination, or Destinations for a part), all delivered here.
func (n *Node) replayHere(rec model.Replay) error {
	if n.member == nil {
		if len(rec.Destinations) > 0 {
			return &model.FieldError{Field: "destinations", Message: "a replay's part names destinations only in a cluster"}
		}
		return nil
	}
	dests := rec.Destinations
	if len(dests) == 0 && rec.Destination != "" {
		dests = []string{rec.Destination}
	}
	if len(dests) == 0 {
		return fmt.Errorf("%w: in a cluster a replay names its destinations (each is replayed by the member that delivers it)", ErrElsewhere)
	}
	for _, d := range dests {
		if !n.Delivers(d) {
			return fmt.Errorf("%w: destination %q is delivered by the member leading partition %d; send the replay to that member (webhookops cluster status shows it)",
				ErrElsewhere, d, n.db.DestPartition(d))
		}
	}
	return nil
}

// Replay reads a replay: the live tally while it runs, else its record.
// An unknown id is ErrNotFound.
func (n *Node) Replay(id string) (model.Replay, error) {
	reply := make(chan replayGetReply, 1)
	n.system.Root.Send(n.replays.pid, &replayGetMsg{id: id, reply: reply})
	select {
	case got := <-reply:
		if got.ok {
			return got.rec, nil
		}
	case <-time.After(5 * time.Second):
		// The coordinator is stopped or stuck: the record is the next
		// best answer.
	}
	raw, err := n.db.GetConfig(wal.KindReplay, id)
	if err != nil {
		if errors.Is(err, wal.ErrNotFound) {
			return model.Replay{}, fmt.Errorf("%w: no replay %q", ErrNotFound, id)
		}
		return model.Replay{}, err
	}
	var rec model.Replay
	if err := json.Unmarshal(raw, &rec); err != nil {
		return model.Replay{}, fmt.Errorf("%w: replay %q", wal.ErrCorrupt, id)
	}
	return rec, nil
}

// Replays lists replays newest first, at most limit of them, with ids
// before cursor ("" starts at the newest); next is the cursor of the next
// page, "" at the end. Replay ids sort by creation time.
func (n *Node) Replays(cursor string, limit int) (page []model.Replay, next string, err error) {
	var ids []string
	if err := n.db.LoadConfig(wal.KindReplay, func(id string, _ []byte) error {
		if cursor == "" || strings.Compare(id, cursor) < 0 {
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		return nil, "", err
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	page = make([]model.Replay, 0, len(ids))
	for _, id := range ids {
		rec, err := n.Replay(id)
		if err != nil {
			return nil, "", err
		}
		page = append(page, rec)
	}
	return page, next, nil
}

// ActiveReplays is how many replays are running.
func (n *Node) ActiveReplays() int {
	reply := make(chan int, 1)
	n.system.Root.Send(n.replays.pid, &replayCountMsg{reply: reply})
	select {
	case c := <-reply:
		return c
	case <-time.After(5 * time.Second):
		return 0
	}
}

// replayFinished tells the coordinator that dest finished a replayed
// delivery of eventID. It never blocks: destinations call it.
func (n *Node) replayFinished(replayID, eventID, dest string, delivered bool) {
	n.system.Root.Send(n.replays.pid, &replayFinishedMsg{replayID: replayID, eventID: eventID, dest: dest, delivered: delivered})
}

// destinationsDeleted tells the coordinator that dests are gone, so the
// pairs waiting on them finish (as failed).
func (n *Node) destinationsDeleted(dests []string) {
	if len(dests) > 0 {
		n.system.Root.Send(n.replays.pid, &replayDestsGoneMsg{dests: dests})
	}
}

// replayCoordinator owns the tallies of the running replays.
type replayCoordinator struct {
	n    *Node
	runs map[string]*replayRun
	// waiting indexes the outstanding pairs of every run: one delivery
	// finishing finishes the pair for every replay that rode on it.
	waiting      map[pairKey][]*replayRun
	persistArmed bool
}

func (c *replayCoordinator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *replayBeginMsg:
		m.run.rec.Status = model.ReplayRunning
		m.run.dirty = true
		c.runs[m.run.rec.ID] = m.run
		c.armPersist(ctx)
	case *replayCollectedMsg:
		if run := c.runs[m.id]; run != nil {
			run.rec.Events = m.events
			run.dirty = true
		}
	case *replayPairMsg:
		c.send(m)
	case *replayScannedMsg:
		run := c.runs[m.id]
		if run == nil {
			return
		}
		if m.err != nil {
			c.finish(run, m.err)
			return
		}
		run.rec.ScanDone = true
		run.dirty = true
		c.finishIfDone(run)
	case *replayFinishedMsg:
		k := pairKey{m.eventID, m.dest}
		runs := c.waiting[k]
		delete(c.waiting, k)
		for _, run := range runs {
			c.count(run, k, m.delivered)
		}
	case *replayDestsGoneMsg:
		for _, d := range m.dests {
			for k, runs := range c.waiting {
				if k.dest != d {
					continue
				}
				delete(c.waiting, k)
				for _, run := range runs {
					c.count(run, k, false)
				}
			}
		}
	case *replayPersistMsg:
		c.persistArmed = false
		for _, run := range c.runs {
			c.persist(run, false)
		}
		c.armPersist(ctx)
	case *replayGetMsg:
		run := c.runs[m.id]
		if run == nil {
			m.reply <- replayGetReply{}
			return
		}
		rec := run.rec
		m.reply <- replayGetReply{rec: rec, ok: true}
	case *replayCountMsg:
		m.reply <- len(c.runs)
	case *actor.Stopping:
		// The scans have stopped: save where every replay got to.
		for _, run := range c.runs {
			c.persist(run, true)
		}
	}
}

// armPersist schedules the next save while replays run.
func (c *replayCoordinator) armPersist(ctx actor.Context) {
	if c.persistArmed || len(c.runs) == 0 {
		return
	}
	c.persistArmed = true
	self, root := ctx.Self(), c.n.system.Root
	c.n.clock.AfterFunc(replayPersistEvery, func() { root.Send(self, &replayPersistMsg{}) })
}

// send records the pair as outstanding, then enqueues it at its
// destination. A destination deleted since the scan, or a pair this
// replay already sent, is skipped.
func (c *replayCoordinator) send(m *replayPairMsg) {
	run := c.runs[m.id]
	if run == nil {
		return
	}
	k := pairKey{m.ev.ID(), m.dest}
	if _, ok := c.n.Snapshot().Destinations[m.dest]; !ok {
		run.release()
		return
	}
	if _, dup := run.outstanding[k]; dup {
		run.release()
		return
	}
	run.outstanding[k] = struct{}{}
	c.waiting[k] = append(c.waiting[k], run)
	run.rec.Total++
	run.dirty = true
	if !c.n.dests.send(m.dest, &enqueueMsg{ev: m.ev, replayID: run.rec.ID}) {
		// The node is closing: the pair was never sent.
		delete(run.outstanding, k)
		c.unwait(k, run)
		run.rec.Total--
		run.release()
	}
}

// count finishes one outstanding pair of run.
func (c *replayCoordinator) count(run *replayRun, k pairKey, delivered bool) {
	if _, ok := run.outstanding[k]; !ok {
		return
	}
	delete(run.outstanding, k)
	if delivered {
		run.rec.Succeeded++
	} else {
		run.rec.Failed++
	}
	run.dirty = true
	run.release()
	c.finishIfDone(run)
}

func (c *replayCoordinator) unwait(k pairKey, run *replayRun) {
	runs := c.waiting[k]
	for i, r := range runs {
		if r == run {
			runs = append(runs[:i], runs[i+1:]...)
			break
		}
	}
	if len(runs) == 0 {
		delete(c.waiting, k)
	} else {
		c.waiting[k] = runs
	}
}

func (c *replayCoordinator) finishIfDone(run *replayRun) {
	if run.rec.ScanDone && len(run.outstanding) == 0 {
		c.finish(run, nil)
	}
}

// finish records the outcome with its audit entry and retires the run.
func (c *replayCoordinator) finish(run *replayRun, failure error) {
	rec := &run.rec
	rec.FinishedAt = c.n.clock.Now().UTC()
	action := "replay.completed"
	rec.Status = model.ReplayCompleted
	if failure != nil {
		rec.Status = model.ReplayFailed
		rec.Error = failure.Error()
		action = "replay.failed"
	}
	detail := map[string]string{"total": strconv.Itoa(rec.Total), "succeeded": strconv.Itoa(rec.Succeeded),
		"failed": strconv.Itoa(rec.Failed), "events": strconv.Itoa(rec.Events)}
	if rec.Error != "" {
		detail["error"] = rec.Error
	}
	b := c.n.db.NewBatch()
	if err := b.PutConfig(wal.KindReplay, rec.ID, rec); err != nil {
		b.Discard()
		c.n.log.Error("replay record not saved", "replay", rec.ID, "err", err)
	} else {
		b.Audit(wal.AuditEntry{At: rec.FinishedAt, Action: action, ObjectType: "replay", ObjectID: rec.ID, ReplayID: rec.ID, Detail: detail})
		if err := c.n.db.CommitWait(b); err != nil {
			c.n.log.Error("replay record not saved", "replay", rec.ID, "err", err)
		}
	}
	for k := range run.outstanding {
		c.unwait(k, run)
	}
	delete(c.runs, rec.ID)
	c.n.log.Info("replay finished", "replay", rec.ID, "status", rec.Status, "total", rec.Total, "succeeded", rec.Succeeded, "failed", rec.Failed)
}

// persist saves run's record if it changed; wait waits for the commit
// (on stop), progress updates do not.
func (c *replayCoordinator) persist(run *replayRun, wait bool) {
	if !run.dirty {
		return
	}
	run.dirty = false
	b := c.n.db.NewBatch()
	if err := b.PutConfig(wal.KindReplay, run.rec.ID, run.rec); err != nil {
		b.Discard()
		return
	}
	if !wait {
		c.n.db.Commit(b, nil)
		return
	}
	if err := c.n.db.CommitWait(b); err != nil {
		c.n.log.Error("replay record not saved", "replay", run.rec.ID, "err", err)
	}
}

// samePart reports whether b asks for what the recorded replay part a
// was asked for: the same caller, events and destinations.
func samePart(a, b model.Replay) bool {
	return a.RequestedBy == b.RequestedBy && a.EventID == b.EventID && a.Destination == b.Destination &&
		a.DeadLetters == b.DeadLetters && slices.Equal(a.EventIDs, b.EventIDs) &&
		slices.Equal(a.Destinations, b.Destinations) && sameJSON(a.Filter, b.Filter)
}

// sameJSON compares filters as stored: a recorded one was read back from
// JSON (times in another location, empty slices nil).
func sameJSON(a, b *model.EventFilter) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
