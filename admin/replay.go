package admin

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

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
	rec := Replay{EventID: ev.ID(), Destination: req.Destination, Reason: req.Reason, RequestedBy: p.actor()}
	if s.clustered() {
		dests := ev.Destinations
		if req.Destination != "" {
			dests = []string{req.Destination}
		}
		return s.startClustered(rec, dests, "event", ev.ID(), p)
	}
	return s.node.StartReplay(rec, "event", ev.ID())
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
	rec := Replay{Filter: &f, Destination: req.Destination, Reason: req.Reason, RequestedBy: p.actor()}
	if s.clustered() {
		dests := []string{req.Destination}
		if req.Destination == "" {
			dests = slices.Sorted(maps.Keys(s.node.Snapshot().Destinations))
			if len(dests) == 0 {
				return Replay{}, errConflict("no destinations to replay to")
			}
		}
		return s.startClustered(rec, dests, "", "", p)
	}
	return s.node.StartReplay(rec, "", "")
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
	if s.clustered() {
		return s.startClustered(rec, []string{slug}, "", "", p)
	}
	return s.node.StartReplay(rec, "", "")
}

func (s *Server) getReplay(_ *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	rec, err := s.Replay(ps.ByName("id"), p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

// Replay reads a replay: its live counts while it runs. On a cluster
// member that reaches the others (Config.Peers) it sums the replay's parts
// on every member, read with p's token.
func (s *Server) Replay(id string, p Principal) (Replay, error) {
	if s.clustered() && s.cfg.Peers != nil {
		return s.replayEverywhere(id, p)
	}
	rec, err := s.node.Replay(id)
	if errors.Is(err, actors.ErrNotFound) {
		return Replay{}, errNotFound("no replay %q", id)
	}
	return rec, err
}

func (s *Server) listReplays(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	cursor, limit, err := replayPageQuery(r)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.Replays(cursor, limit, p)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// replayPageQuery reads a replay list's ?cursor= and ?limit=.
func replayPageQuery(r *http.Request) (string, int, error) {
	limit, err := queryLimit(r, 50, 500)
	if err != nil {
		return "", 0, err
	}
	for k := range r.URL.Query() {
		if k != "limit" && k != "cursor" {
			return "", 0, errBadRequest("unknown_field", k, "unknown query parameter %q", k)
		}
	}
	return r.URL.Query().Get("cursor"), limit, nil
}

// Replays lists replays, newest first, after cursor. On a cluster member
// that reaches the others (Config.Peers) the list covers every member, the
// parts of one replay summed, read with p's token.
func (s *Server) Replays(cursor string, limit int, p Principal) (Page[Replay], error) {
	if s.clustered() && s.cfg.Peers != nil {
		return s.replaysEverywhere(cursor, limit, p)
	}
	items, next, err := s.node.Replays(cursor, limit)
	if err != nil {
		return Page[Replay]{}, err
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
