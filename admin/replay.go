package admin

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

// maxOutstanding bounds how many replayed deliveries one replay has sent
// and not yet seen finish; past it, sending waits. It keeps a replay of
// millions of events from flooding the destination mailboxes.
const maxOutstanding = 50_000

// ReplayHook connects the node's OnReplayDelivery to the admin server,
// which is built after the node. Calls before the server attaches (or
// after it closes) are dropped: the replays they belong to were
// interrupted by a restart and read as failed.
type ReplayHook struct{ m atomic.Pointer[replayManager] }

// NewReplayHook returns a hook for actors.Config.OnReplayDelivery and
// admin.Config.ReplayHook.
func NewReplayHook() *ReplayHook { return &ReplayHook{} }

// OnReplayDelivery is the actors.Config.OnReplayDelivery function. It only
// counts and signals: it runs on a destination actor and must not block.
func (h *ReplayHook) OnReplayDelivery(replayID, eventID, dest string, delivered bool) {
	if m := h.m.Load(); m != nil {
		m.finished(replayID, eventID, dest, delivered)
	}
}

func (h *ReplayHook) attach(m *replayManager) { h.m.Store(m) }

type pairKey struct{ event, dest string }

type replayRun struct {
	mu          sync.Mutex // guards the fields below
	rec         Replay
	outstanding map[pairKey]time.Time // sent, not yet finished; value: when sent
	dirty       bool                  // rec changed since last persisted

	notify chan struct{} // cap 1: a delivery finished
}

type replayManager struct {
	s *Server

	mu     sync.Mutex // guards active
	active map[string]*replayRun

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newReplayManager(s *Server) (*replayManager, error) {
	m := &replayManager{s: s, active: map[string]*replayRun{}, done: make(chan struct{})}
	// A replay that was queued or running when the node stopped lost its
	// in-memory tally: mark it failed, saying so. Its deliveries already
	// queued still happen (they are durable in the destination queues).
	var stale []Replay
	err := s.db.LoadConfig(wal.KindReplay, func(id string, raw []byte) error {
		var r Replay
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%w: replay %q", wal.ErrCorrupt, id)
		}
		if r.Status == ReplayQueued || r.Status == ReplayRunning {
			stale = append(stale, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(stale) > 0 {
		b := s.db.NewBatch()
		for _, r := range stale {
			r.Status = ReplayFailed
			r.FinishedAt = s.now()
			r.Error = fmt.Sprintf("interrupted by a restart after %d of %d deliveries finished (scan complete: %v); deliveries already queued still run; start a new replay for the rest",
				r.Succeeded+r.Failed, r.Total, r.ScanDone)
			if err := b.PutConfig(wal.KindReplay, r.ID, r); err != nil {
				b.Discard()
				return nil, err
			}
			b.Audit(wal.AuditEntry{At: s.now(), Action: "replay.failed", ObjectType: "replay", ObjectID: r.ID, ReplayID: r.ID,
				Detail: map[string]string{"error": r.Error}})
		}
		if err := s.db.CommitWait(b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *replayManager) close() {
	m.once.Do(func() {
		// Under mu, so start's check of done and its wg.Add are one step
		// against this close and the Wait below.
		m.mu.Lock()
		close(m.done)
		m.mu.Unlock()
	})
	m.wg.Wait()
}

func (m *replayManager) activeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.active)
}

func (m *replayManager) finished(replayID, eventID, dest string, delivered bool) {
	m.mu.Lock()
	run := m.active[replayID]
	m.mu.Unlock()
	if run == nil {
		return
	}
	run.mu.Lock()
	k := pairKey{eventID, dest}
	if _, ok := run.outstanding[k]; ok {
		delete(run.outstanding, k)
		run.count(delivered)
	}
	run.mu.Unlock()
	select {
	case run.notify <- struct{}{}:
	default:
	}
}

// count is called with mu held.
func (run *replayRun) count(delivered bool) {
	if delivered {
		run.rec.Succeeded++
	} else {
		run.rec.Failed++
	}
	run.dirty = true
}

func newReplayID() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("rpl_%016x%08x", uint64(time.Now().UnixNano()), binary.BigEndian.Uint32(b[:]))
}

// start persists the replay as queued with its replay.requested audit
// entry, then runs it in the background. The answer to the request is
// sent only after the record is durable.
func (m *replayManager) start(rec Replay, objType, objID string) (Replay, error) {
	rec.ID = newReplayID()
	rec.Status = ReplayQueued
	rec.CreatedAt = m.s.now()
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
	if objType == "" {
		objType, objID = "replay", rec.ID
	}
	b := m.s.db.NewBatch()
	if err := b.PutConfig(wal.KindReplay, rec.ID, rec); err != nil {
		b.Discard()
		return Replay{}, err
	}
	b.Audit(wal.AuditEntry{At: m.s.now(), Action: "replay.requested", ObjectType: objType, ObjectID: objID,
		Actor: rec.RequestedBy, ReplayID: rec.ID, Detail: detail})
	run := &replayRun{rec: rec, outstanding: map[pairKey]time.Time{}, notify: make(chan struct{}, 1)}
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		b.Discard()
		return Replay{}, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the server is shutting down"}
	default:
	}
	m.active[rec.ID] = run
	m.wg.Add(1)
	m.mu.Unlock()
	if err := m.s.db.CommitWait(b); err != nil {
		m.mu.Lock()
		delete(m.active, rec.ID)
		m.mu.Unlock()
		m.wg.Done()
		return Replay{}, err
	}
	go m.run(run)
	return rec, nil
}

// target is one event to replay.
type target struct {
	part uint16
	seq  uint64
}

func (m *replayManager) run(run *replayRun) {
	defer m.wg.Done()
	run.mu.Lock()
	run.rec.Status = ReplayRunning
	rec := run.rec
	run.mu.Unlock()
	m.persist(run, false)

	targets, err := m.collect(rec)
	if err == nil {
		err = m.send(run, rec, targets)
	}
	if err != nil {
		if errors.Is(err, errStopped) {
			return
		}
		m.finish(run, err)
		return
	}
	run.mu.Lock()
	run.rec.ScanDone = true
	run.dirty = true
	run.mu.Unlock()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ticks := 0
	for {
		run.mu.Lock()
		complete := run.rec.Succeeded+run.rec.Failed >= run.rec.Total
		run.mu.Unlock()
		if complete {
			m.finish(run, nil)
			return
		}
		select {
		case <-m.done:
			m.persist(run, false)
			return
		case <-run.notify:
		case <-tick.C:
			ticks++
			if ticks%2 == 0 {
				m.reconcile(run)
			}
			m.persist(run, true)
		}
	}
}

var errStopped = errors.New("admin: stopped")

// collect lists the events to replay, oldest first, so an ordered
// destination receives them in their original order.
func (m *replayManager) collect(rec Replay) ([]target, error) {
	s := m.s
	switch {
	case rec.EventID != "":
		part, seq, err := wal.ParseEventID(rec.EventID)
		if err != nil {
			return nil, err
		}
		return []target{{part, seq}}, nil
	case rec.DeadLetters:
		var f EventFilter
		if rec.Filter != nil {
			f = *rec.Filter
		}
		var out []target
		var after uint64
		for {
			ids, next, err := s.db.ListDead(rec.Destination, after, 1000)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if len(rec.EventIDs) > 0 && !slices.Contains(rec.EventIDs, id) {
					continue
				}
				part, seq, err := wal.ParseEventID(id)
				if err != nil {
					continue
				}
				if rec.Filter != nil {
					e, err := s.db.GetEvent(part, seq)
					if err != nil || !actors.MatchEventRecord(&f, e) {
						continue
					}
				}
				out = append(out, target{part, seq})
			}
			if next == 0 {
				return out, nil
			}
			after = next
			select {
			case <-m.done:
				return nil, errStopped
			default:
			}
		}
	default:
		f := *rec.Filter
		var out []target
		var before uint64
		for {
			evs, next, err := s.db.ListEventsUntil(before, 1000, s.scanMatch(&f))
			if err != nil {
				return nil, err
			}
			for _, e := range evs {
				out = append(out, target{e.Partition, e.Seq})
			}
			if next == 0 {
				slices.Reverse(out)
				return out, nil
			}
			before = next
			select {
			case <-m.done:
				return nil, errStopped
			default:
			}
		}
	}
}

// send hands every (event, destination) pair to the node, recording each
// as outstanding before it is sent, so its completion cannot be missed.
func (m *replayManager) send(run *replayRun, rec Replay, targets []target) error {
	s := m.s
	run.mu.Lock()
	run.rec.Events = len(targets)
	run.dirty = true
	run.mu.Unlock()
	for i, t := range targets {
		if i%256 == 0 {
			select {
			case <-m.done:
				return errStopped
			default:
			}
		}
		for {
			run.mu.Lock()
			n := len(run.outstanding)
			run.mu.Unlock()
			if n < maxOutstanding {
				break
			}
			select {
			case <-m.done:
				return errStopped
			case <-run.notify:
			case <-time.After(time.Second):
				m.reconcile(run)
			}
		}
		ev, err := s.db.GetEvent(t.part, t.seq)
		if err != nil {
			if errors.Is(err, wal.ErrNotFound) && rec.EventID == "" {
				continue // removed by retention since the scan
			}
			return err
		}
		dests := ev.Destinations
		if rec.Destination != "" {
			dests = []string{rec.Destination}
		}
		snap := s.node.Snapshot()
		for _, d := range dests {
			if _, ok := snap.Destinations[d]; !ok {
				continue // deleted since: nothing to deliver to
			}
			k := pairKey{ev.ID(), d}
			run.mu.Lock()
			run.outstanding[k] = s.now()
			run.rec.Total++
			run.dirty = true
			run.mu.Unlock()
			if len(s.node.Replay(ev, []string{d}, rec.ID)) == 0 {
				return errors.New("the node is shutting down")
			}
		}
	}
	return nil
}

// reconcile counts outstanding deliveries that finished without telling
// this replay: one that rode on a delivery already pending (whose replay id
// another replay then took), or whose destination was deleted. A delivery
// counts when its record is final and was updated after the replay sent it.
func (m *replayManager) reconcile(run *replayRun) {
	s := m.s
	run.mu.Lock()
	keys := slices.Collect(maps.Keys(run.outstanding))
	run.mu.Unlock()
	snap := s.node.Snapshot()
	for _, k := range keys {
		_, exists := snap.Destinations[k.dest]
		var final, delivered bool
		if !exists {
			final = true
		} else {
			_, seq, err := wal.ParseEventID(k.event)
			if err != nil {
				continue
			}
			d, err := s.db.GetDelivery(k.dest, seq)
			if err != nil || d.Status == wal.StatusPending {
				continue
			}
			run.mu.Lock()
			sent, ok := run.outstanding[k]
			run.mu.Unlock()
			if !ok || !d.UpdatedAt.After(sent) {
				continue
			}
			final, delivered = true, d.Status == wal.StatusDelivered
		}
		if final {
			run.mu.Lock()
			if _, ok := run.outstanding[k]; ok {
				delete(run.outstanding, k)
				run.count(delivered)
			}
			run.mu.Unlock()
		}
	}
}

// persist writes the record if it changed; async skips waiting for the
// commit (progress updates), the final write waits.
func (m *replayManager) persist(run *replayRun, async bool) {
	run.mu.Lock()
	if !run.dirty && async {
		run.mu.Unlock()
		return
	}
	rec := run.rec
	run.dirty = false
	run.mu.Unlock()
	b := m.s.db.NewBatch()
	if err := b.PutConfig(wal.KindReplay, rec.ID, rec); err != nil {
		b.Discard()
		return
	}
	if async {
		m.s.db.Commit(b, nil)
		return
	}
	if err := m.s.db.CommitWait(b); err != nil {
		m.s.log.Error("replay record not saved", "replay", rec.ID, "err", err)
	}
}

// finish records the outcome with its audit entry and retires the run.
func (m *replayManager) finish(run *replayRun, failure error) {
	run.mu.Lock()
	run.rec.FinishedAt = m.s.now()
	action := "replay.completed"
	if failure != nil {
		run.rec.Status = ReplayFailed
		run.rec.Error = failure.Error()
		action = "replay.failed"
	} else {
		run.rec.Status = ReplayCompleted
	}
	rec := run.rec
	run.mu.Unlock()
	detail := map[string]string{"total": itoa(rec.Total), "succeeded": itoa(rec.Succeeded), "failed": itoa(rec.Failed), "events": itoa(rec.Events)}
	if rec.Error != "" {
		detail["error"] = rec.Error
	}
	b := m.s.db.NewBatch()
	if err := b.PutConfig(wal.KindReplay, rec.ID, rec); err == nil {
		b.Audit(wal.AuditEntry{At: m.s.now(), Action: action, ObjectType: "replay", ObjectID: rec.ID, ReplayID: rec.ID, Detail: detail})
		if err := m.s.db.CommitWait(b); err != nil {
			m.s.log.Error("replay record not saved", "replay", rec.ID, "err", err)
		}
	} else {
		b.Discard()
	}
	m.mu.Lock()
	delete(m.active, rec.ID)
	m.mu.Unlock()
	m.s.log.Info("replay finished", "replay", rec.ID, "status", rec.Status, "total", rec.Total, "succeeded", rec.Succeeded, "failed", rec.Failed)
}

// get reads a replay: the live tally if it is running, else the record.
func (m *replayManager) get(id string) (Replay, error) {
	m.mu.Lock()
	run := m.active[id]
	m.mu.Unlock()
	if run != nil {
		run.mu.Lock()
		defer run.mu.Unlock()
		return run.rec, nil
	}
	raw, err := m.s.db.GetConfig(wal.KindReplay, id)
	if err != nil {
		if errors.Is(err, wal.ErrNotFound) {
			return Replay{}, errNotFound("no replay %q", id)
		}
		return Replay{}, err
	}
	var r Replay
	if err := json.Unmarshal(raw, &r); err != nil {
		return Replay{}, fmt.Errorf("%w: replay %q", wal.ErrCorrupt, id)
	}
	return r, nil
}

// --- handlers ---

func (s *Server) replayEvent(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	var req EventReplayRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	rec, err := s.ReplayEvent(ps.ByName("id"), req, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, rec, nil
}

// ReplayEvent replays one event to all its destinations, or to
// req.Destination. The replay is durable before it returns.
func (s *Server) ReplayEvent(id string, req EventReplayRequest, p Principal) (Replay, error) {
	ev, err := s.db.GetEventByID(id)
	if err != nil {
		if errors.Is(err, wal.ErrNotFound) {
			return Replay{}, errNotFound("no event %q", id)
		}
		return Replay{}, err
	}
	if req.Destination != "" && !slices.Contains(ev.Destinations, req.Destination) {
		return Replay{}, errBadRequest("validation_failed", "destination", "event %s was not routed to %q (its destinations: %v)", id, req.Destination, ev.Destinations)
	}
	if len(ev.Destinations) == 0 {
		return Replay{}, errConflict("event %s has no destinations to replay to", id)
	}
	return s.replays.start(Replay{EventID: ev.ID(), Destination: req.Destination, Reason: req.Reason, RequestedBy: p.actor()}, "event", ev.ID())
}

func (s *Server) createReplay(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	var req ReplayRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	rec, err := s.StartReplay(req, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, rec, nil
}

// StartReplay starts a bulk replay of the events matching req's filter.
func (s *Server) StartReplay(req ReplayRequest, p Principal) (Replay, error) {
	if err := validateFilter(&req.EventFilter); err != nil {
		return Replay{}, err
	}
	if req.EventFilter == (EventFilter{}) && !req.All {
		return Replay{}, errBadRequest("validation_failed", "all", "no filter given: set \"all\": true to replay every event")
	}
	if req.Destination != "" {
		if _, ok := s.node.Snapshot().Destinations[req.Destination]; !ok {
			return Replay{}, errBadRequest("validation_failed", "destination", "no destination %q", req.Destination)
		}
	}
	f := req.EventFilter
	return s.replays.start(Replay{Filter: &f, Destination: req.Destination, Reason: req.Reason, RequestedBy: p.actor()}, "", "")
}

func (s *Server) redrive(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	var req RedriveRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	out, err := s.Redrive(ps.ByName("slug"), req, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, out, nil
}

// Redrive replays destination slug's dead letters: all of them, those
// named, or those matching req's filter.
func (s *Server) Redrive(slug string, req RedriveRequest, p Principal) (Replay, error) {
	if _, ok := s.node.Snapshot().Destinations[slug]; !ok {
		return Replay{}, errNotFound("no destination %q", slug)
	}
	for i, id := range req.EventIDs {
		if _, _, err := wal.ParseEventID(id); err != nil {
			return Replay{}, errBadRequest("validation_failed", fmt.Sprintf("event_ids[%d]", i), "%q is not an event id", id)
		}
	}
	rec := Replay{Destination: slug, DeadLetters: true, EventIDs: req.EventIDs, Reason: req.Reason, RequestedBy: p.actor()}
	if req.EventType != "" || !req.Since.IsZero() || !req.Until.IsZero() {
		rec.Filter = &EventFilter{EventType: req.EventType, Since: req.Since, Until: req.Until}
		if err := validateFilter(rec.Filter); err != nil {
			return Replay{}, err
		}
	}
	return s.replays.start(rec, "", "")
}

func (s *Server) getReplay(_ *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	rec, err := s.Replay(ps.ByName("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

// Replay reads a replay: its live counts while it runs.
func (s *Server) Replay(id string) (Replay, error) { return s.replays.get(id) }

func (s *Server) listReplays(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	limit, err := queryLimit(r, 50, 500)
	if err != nil {
		return 0, nil, err
	}
	for k := range r.URL.Query() {
		if k != "limit" && k != "cursor" {
			return 0, nil, errBadRequest("unknown_field", k, "unknown query parameter %q", k)
		}
	}
	page, err := s.Replays(r.URL.Query().Get("cursor"), limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// Replays lists replays, newest first, after cursor.
func (s *Server) Replays(cursor string, limit int) (Page[Replay], error) {
	var ids []string
	if err := s.db.LoadConfig(wal.KindReplay, func(id string, _ []byte) error {
		if cursor == "" || strings.Compare(id, cursor) < 0 {
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		return Page[Replay]{}, err
	}
	slices.Reverse(ids) // newest first: ids sort by creation time
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	items := make([]Replay, 0, len(ids))
	for _, id := range ids {
		rec, err := s.replays.get(id)
		if err != nil {
			return Page[Replay]{}, err
		}
		items = append(items, rec)
	}
	return newPage(items, next), nil
}

func (s *Server) listDeadLetters(r *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	limit, err := queryLimit(r, 50, 500)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.DeadLetters(ps.ByName("slug"), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// DeadLetters lists destination slug's dead letters, oldest first, after
// cursor.
func (s *Server) DeadLetters(slug, cursor string, limit int) (Page[DeadLetter], error) {
	if _, ok := s.node.Snapshot().Destinations[slug]; !ok {
		return Page[DeadLetter]{}, errNotFound("no destination %q", slug)
	}
	after, err := parseCursor(cursor)
	if err != nil {
		return Page[DeadLetter]{}, err
	}
	ids, next, err := s.db.ListDead(slug, after, limit)
	if err != nil {
		return Page[DeadLetter]{}, err
	}
	items := make([]DeadLetter, 0, len(ids))
	for _, id := range ids {
		ev, err := s.db.GetEventByID(id)
		if err != nil {
			continue
		}
		dl := DeadLetter{EventID: id, Source: ev.Source, EventType: ev.EventType, ReceivedAt: ev.ReceivedAt}
		if d, err := s.db.GetDelivery(slug, ev.Seq); err == nil && len(d.Attempts) > 0 {
			dl.Attempts = len(d.Attempts)
			last := d.Attempts[len(d.Attempts)-1]
			dl.Last = &last
		}
		items = append(items, dl)
	}
	return newPage(items, formatCursor(next)), nil
}
