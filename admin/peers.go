package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"
)

// Peers reach the other members of a cluster through their admin APIs,
// for what one member carries out for another: a replay runs on the member
// that delivers its destinations (the leader of their partitions),
// whichever member it was asked of. A request goes with the caller's own
// token, so the member that carries it out checks and audits the caller
// as if asked directly (tokens are replicated by the metadata shard, so a
// token valid on one member is valid on all).
//
// Why the admin API and not protoactor remote between members: it is
// already served on every member behind TLS and tokens, and a forwarded
// replay is a request an operator could have sent to the right member
// themselves; remote would add a second listener, its own TLS setup and
// protobuf message types for the same two calls.
type Peers struct {
	// Self is this member's id.
	Self uint64
	// URLs are members' admin API base URLs (http[s]://host:port), by id,
	// as the other members reach them, given by the operator (serve
	// --member-admin-urls). A member listed here is reached at this URL
	// whatever it recorded.
	URLs map[uint64]string
	// Recorded reads the members the metadata shard records and the admin
	// URL each recorded for itself ("" for none), at every use, so the
	// peers follow the records as they change. Nil: only URLs.
	Recorded func() (map[uint64]string, error)
	// Client sends the requests; its TLS configuration must trust the
	// members' admin certificates. Nil: a client with a 10 s timeout.
	Client *http.Client
}

// CheckMemberURL checks a member's admin API base URL and returns it as
// scheme://host[:port]. Plain http is allowed only to a loopback IP: the
// caller's token crosses with every forwarded request.
func CheckMemberURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("%q: want http[s]://host:port", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("%q: plain http only to a loopback address (tokens cross with every forwarded request); use https", raw)
		}
	default:
		return "", fmt.Errorf("%q: want http or https", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// url is member id's admin API base URL: the operator's (URLs) if it
// gives one, else the one the member recorded. Without one the error is
// why, for the caller to pass on.
func (p *Peers) url(id uint64) (string, error) {
	if u, ok := p.URLs[id]; ok {
		return u, nil
	}
	if p.Recorded == nil {
		return "", fmt.Errorf("member %d is not in --member-admin-urls", id)
	}
	recs, err := p.Recorded()
	if err != nil {
		return "", fmt.Errorf("the members' records cannot be read: %w", err)
	}
	raw, ok := recs[id]
	switch {
	case !ok:
		return "", fmt.Errorf("member %d is not recorded as a member in the metadata shard (yet), and not in --member-admin-urls", id)
	case raw == "":
		return "", fmt.Errorf("member %d recorded no admin URL this member can reach (its --admin-addr binds every interface, serves plain http off loopback, or binds loopback on another machine): start it with --admin-advertise-url, or give this member --member-admin-urls", id)
	}
	u, err := CheckMemberURL(raw)
	if err != nil {
		return "", fmt.Errorf("member %d's recorded admin URL is refused here: %w; give this member --member-admin-urls", id, err)
	}
	return u, nil
}

// others lists the other members, by id: those in URLs and those
// recorded.
func (p *Peers) others() []uint64 {
	ids := slices.Collect(maps.Keys(p.URLs))
	if p.Recorded != nil {
		if recs, err := p.Recorded(); err == nil {
			ids = append(ids, slices.Collect(maps.Keys(recs))...)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return slices.DeleteFunc(ids, func(id uint64) bool { return id == p.Self })
}

// peerTimeout bounds one request to another member.
const peerTimeout = 10 * time.Second

// call sends one admin API request to member id and decodes its answer
// into out. An answer with an error status comes back as that *Error, so
// the caller sees what the member said (404, 409, ...); a member whose
// URL is not known here is 503.
func (p *Peers) call(ctx context.Context, id uint64, method, path, bearer string, in, out any) error {
	base, err := p.url(id)
	if err != nil {
		return errUnavailable("%v", err)
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	hc := p.Client
	if hc == nil {
		hc = &http.Client{Timeout: peerTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return errUnavailable("member %d (%s) did not answer: %v", id, base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return errUnavailable("member %d (%s): reading its answer: %v", id, base, err)
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			eb.Error.Message = fmt.Sprintf("member %d: %s", id, eb.Error.Message)
			return eb.Error
		}
		return &Error{Status: http.StatusBadGateway, Code: "bad_gateway", Message: fmt.Sprintf("member %d (%s) answered %s", id, base, resp.Status)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return &Error{Status: http.StatusBadGateway, Code: "bad_gateway", Message: fmt.Sprintf("member %d (%s): its answer does not decode: %v", id, base, err)}
		}
	}
	return nil
}

// clustered reports whether this node is a cluster member.
func (s *Server) clustered() bool { return s.cfg.ClusterPartitions != nil }

// owners groups dests by the member that delivers them now: the leader of
// each one's partition.
func (s *Server) owners(dests []string) (map[uint64][]string, error) {
	parts, err := s.cfg.ClusterPartitions()
	if err != nil {
		return nil, err
	}
	leader := map[uint16]uint64{}
	for _, p := range parts {
		leader[p.Partition] = p.Leader
	}
	out := map[uint64][]string{}
	for _, d := range dests {
		p := s.db.DestPartition(d)
		id := leader[p]
		if id == 0 {
			return nil, errUnavailable("partition %d (destination %q) has no leader now (an election is running); retry", p, d)
		}
		out[id] = append(out[id], d)
	}
	return out, nil
}

// replayRetries and replayRetryPause bound how long starting a replay
// waits for its destinations' partitions to settle: a member that no
// longer (or not yet) delivers a destination answers 409 elsewhere, a
// partition electing a leader has none, a member whose metadata shard
// elects answers 503; a failover is over in about a second.
const (
	replayRetries    = 6
	replayRetryPause = 300 * time.Millisecond
)

// startClustered starts rec on the members that deliver its destinations
// (dests: rec.Destination, or every destination it may reach), one part
// each under one id, here for what this member delivers and through Peers
// for the rest. A destination whose member turns out to be another (its
// partition changed leader meanwhile) is tried again on the new one. The
// answer sums the parts.
func (s *Server) startClustered(rec Replay, dests []string, objType, objID string, p Principal) (Replay, error) {
	if s.cfg.Peers == nil {
		// No way to reach the others: carried out here, or refused as
		// another member's (409 elsewhere).
		if rec.Destination == "" {
			rec.Destinations = dests
		}
		return s.node.StartReplay(rec, objType, objID)
	}
	self := s.cfg.Peers.Self
	rec.ID = actors.NewReplayID(time.Now())
	var got []replayPart
	var failed []string
	var lastErr error
	todo := dests
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 0 {
			time.Sleep(replayRetryPause)
		}
		again := attempt+1 < replayRetries
		byOwner, err := s.owners(todo)
		if err != nil {
			if again && toError(err).Status == http.StatusServiceUnavailable {
				continue // a partition without a leader: an election runs
			}
			lastErr = err
			failed = append(failed, fmt.Sprintf("%s: %v", strings.Join(todo, ", "), err))
			break
		}
		todo = nil
		for _, id := range slices.Sorted(maps.Keys(byOwner)) {
			part := rec
			if part.Destination == "" {
				part.Destinations = byOwner[id]
			}
			var r Replay
			var err error
			unknown := false
			if id == self {
				r, err = s.node.StartReplay(part, objType, objID)
			} else if _, why := s.cfg.Peers.url(id); why != nil {
				// Asked again, it would still not be known.
				unknown = true
				err = &Error{Status: http.StatusConflict, Code: "elsewhere",
					Message: fmt.Sprintf("member %d delivers %s (it leads the partition); this member cannot forward the replay to it: %v", id, quoteAll(byOwner[id]), why)}
			} else {
				err = s.cfg.Peers.call(context.Background(), id, http.MethodPost, "/api/v1/cluster/replays", p.bearer, part, &r)
			}
			switch {
			case err == nil:
				got = append(got, replayPart{member: id, rec: r})
			case again && !unknown && retryablePart(err):
				todo = append(todo, byOwner[id]...)
			default:
				lastErr = err
				failed = append(failed, fmt.Sprintf("member %d (%s): %v", id, strings.Join(byOwner[id], ", "), err))
			}
		}
	}
	switch {
	case len(got) == 0 && len(failed) == 1:
		return Replay{}, lastErr // as the member said it (404, 409, ...)
	case len(got) == 0:
		return Replay{}, errUnavailable("no member could start the replay: %s", strings.Join(failed, "; "))
	}
	out := mergeReplayParts(got)
	if len(failed) > 0 {
		out.Error = strings.TrimPrefix(out.Error+"; not started on "+strings.Join(failed, "; "), "; ")
	}
	return out, nil
}

// quoteAll is strs quoted, comma-separated.
func quoteAll(strs []string) string {
	q := make([]string, len(strs))
	for i, s := range strs {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// retryablePart reports whether a part refused now may start if asked
// again shortly: its member no longer (or not yet) delivers the
// destinations, or it cannot answer for a moment (no answer, or its
// metadata shard catching up after an election).
func retryablePart(err error) bool {
	e := toError(err)
	return e.Code == "elsewhere" || e.Status == http.StatusServiceUnavailable
}

// replayPart is one member's part of a replay.
type replayPart struct {
	member uint64
	rec    Replay
}

// mergeReplayParts sums the parts of one replay: counts added (Events is
// the most any part scanned: each scans the same events), failed if any
// failed, running while any runs, finished when the last one did.
func mergeReplayParts(parts []replayPart) Replay {
	sort.Slice(parts, func(i, j int) bool { return parts[i].member < parts[j].member })
	out := parts[0].rec
	out.Total, out.Succeeded, out.Failed, out.Events = 0, 0, 0, 0
	out.Destinations, out.Members, out.Error = nil, nil, ""
	out.ScanDone = true
	var errs []string
	queued, running, failed := 0, 0, 0
	for _, p := range parts {
		r := p.rec
		out.Total += r.Total
		out.Succeeded += r.Succeeded
		out.Failed += r.Failed
		out.Events = max(out.Events, r.Events)
		out.ScanDone = out.ScanDone && r.ScanDone
		if r.CreatedAt.Before(out.CreatedAt) {
			out.CreatedAt = r.CreatedAt
		}
		if r.FinishedAt.After(out.FinishedAt) {
			out.FinishedAt = r.FinishedAt
		}
		switch r.Status {
		case model.ReplayQueued:
			queued++
		case model.ReplayRunning:
			running++
		case model.ReplayFailed:
			failed++
		}
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("member %d: %s", p.member, r.Error))
		}
		out.Destinations = append(out.Destinations, r.Destinations...)
		out.Members = append(out.Members, p.member)
	}
	switch {
	case failed > 0:
		out.Status = model.ReplayFailed
	case queued == len(parts):
		out.Status = model.ReplayQueued
	case queued+running > 0:
		out.Status = model.ReplayRunning
	default:
		out.Status = model.ReplayCompleted
	}
	if queued+running > 0 {
		out.FinishedAt = time.Time{}
	}
	slices.Sort(out.Destinations)
	out.Destinations = slices.Compact(out.Destinations)
	out.Error = strings.Join(errs, "; ")
	return out
}

// replayEverywhere reads replay id's parts on every member and sums them.
func (s *Server) replayEverywhere(id string, p Principal) (Replay, error) {
	var parts []replayPart
	var missing []string
	if rec, err := s.node.Replay(id); err == nil {
		parts = append(parts, replayPart{member: s.cfg.Peers.Self, rec: rec})
	} else if !isNotFound(err) {
		return Replay{}, err
	}
	for _, peer := range s.cfg.Peers.others() {
		var rec Replay
		err := s.cfg.Peers.call(context.Background(), peer, http.MethodGet, "/api/v1/cluster/replays/"+url.PathEscape(id), p.bearer, nil, &rec)
		switch {
		case err == nil:
			parts = append(parts, replayPart{member: peer, rec: rec})
		case isNotFound(err):
		default:
			missing = append(missing, fmt.Sprintf("member %d: %v", peer, err))
		}
	}
	if len(parts) == 0 {
		if len(missing) > 0 {
			return Replay{}, errUnavailable("no replay %q here, and not every member answered: %s", id, strings.Join(missing, "; "))
		}
		return Replay{}, errNotFound("no replay %q", id)
	}
	out := mergeReplayParts(parts)
	if len(missing) > 0 {
		out.Error = strings.TrimPrefix(out.Error+"; parts unread: "+strings.Join(missing, "; "), "; ")
	}
	return out, nil
}

// replaysEverywhere lists the replays of every member, newest first,
// after cursor: each member's own page of them, the parts of one replay
// summed. A member that does not answer is left out (and logged).
func (s *Server) replaysEverywhere(cursor string, limit int, p Principal) (Page[Replay], error) {
	items, next, err := s.node.Replays(cursor, limit)
	if err != nil {
		return Page[Replay]{}, err
	}
	parts := map[string][]replayPart{}
	more := next != ""
	for _, r := range items {
		parts[r.ID] = append(parts[r.ID], replayPart{member: s.cfg.Peers.Self, rec: r})
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	for _, peer := range s.cfg.Peers.others() {
		var page Page[Replay]
		if err := s.cfg.Peers.call(context.Background(), peer, http.MethodGet, "/api/v1/cluster/replays?"+q.Encode(), p.bearer, nil, &page); err != nil {
			s.log.Warn("listing replays: a member's are left out", "member", peer, "err", err)
			continue
		}
		more = more || page.NextCursor != ""
		for _, r := range page.Items {
			parts[r.ID] = append(parts[r.ID], replayPart{member: peer, rec: r})
		}
	}
	ids := slices.Sorted(maps.Keys(parts))
	slices.Reverse(ids)
	if len(ids) > limit {
		ids, more = ids[:limit], true
	}
	out := make([]Replay, 0, len(ids))
	for _, id := range ids {
		out = append(out, mergeReplayParts(parts[id]))
	}
	next = ""
	if more && len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return newPage(out, next), nil
}

func isNotFound(err error) bool { return toError(err).Status == http.StatusNotFound }

// --- the routes members call on each other ---

// startReplayPart is POST /api/v1/cluster/replays: another member asks
// this one to carry out its part of a replay (the destinations this member
// delivers), under the replay's id.
func (s *Server) startReplayPart(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	if !s.clustered() {
		return 0, nil, errNotClustered()
	}
	var in Replay
	if err := decodeBody(r, &in); err != nil {
		return 0, nil, err
	}
	snap := s.node.Snapshot()
	for i, d := range in.Destinations {
		if _, ok := snap.Destinations[d]; !ok {
			return 0, nil, errBadRequest("validation_failed", fmt.Sprintf("destinations[%d]", i), "no destination %q", d)
		}
	}
	if in.Destination != "" {
		if _, ok := snap.Destinations[in.Destination]; !ok {
			return 0, nil, errBadRequest("validation_failed", "destination", "no destination %q", in.Destination)
		}
	}
	if in.Filter != nil {
		if err := validateFilter(in.Filter); err != nil {
			return 0, nil, err
		}
	}
	objType, objID := "", ""
	if in.EventID != "" {
		if _, err := s.db.GetEventByID(in.EventID); err != nil {
			if isNotFound(err) {
				return 0, nil, errNotFound("no event %q", in.EventID)
			}
			return 0, nil, err
		}
		objType, objID = "event", in.EventID
	}
	rec, err := s.node.StartReplay(Replay{ID: in.ID, EventID: in.EventID, Destination: in.Destination, Destinations: in.Destinations,
		DeadLetters: in.DeadLetters, EventIDs: in.EventIDs, Filter: in.Filter, Reason: in.Reason, RequestedBy: p.actor()}, objType, objID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, rec, nil
}

// listReplayParts is GET /api/v1/cluster/replays: this member's replays
// (its parts of split ones) only, newest first.
func (s *Server) listReplayParts(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	if !s.clustered() {
		return 0, nil, errNotClustered()
	}
	cursor, limit, err := replayPageQuery(r)
	if err != nil {
		return 0, nil, err
	}
	items, next, err := s.node.Replays(cursor, limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, newPage(items, next), nil
}

// getReplayPart is GET /api/v1/cluster/replays/{id}: this member's part
// of a replay only.
func (s *Server) getReplayPart(_ *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	if !s.clustered() {
		return 0, nil, errNotClustered()
	}
	rec, err := s.node.Replay(ps.ByName("id"))
	if err != nil {
		if isNotFound(err) {
			return 0, nil, errNotFound("no replay %q on this member", ps.ByName("id"))
		}
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}
