package admin

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/wal"
)

// Event statuses, derived from its deliveries.
const (
	// EventPending: at least one destination has not finished.
	EventPending = wal.StatusPending
	// EventDelivered: every destination accepted it.
	EventDelivered = wal.StatusDelivered
	// EventDeadLettered: every destination finished and at least one
	// dead-lettered it.
	EventDeadLettered = wal.StatusDead
	// EventNoDestinations: no route matched it.
	EventNoDestinations = "no_destinations"
)

// EventOut is an event as the API shows it. Headers and Body are filled on
// a single read (GET /events/{id}), not in lists.
type EventOut struct {
	ID             string        `json:"id"`
	Source         string        `json:"source"`
	EventType      string        `json:"event_type"`
	IdempotencyKey string        `json:"idempotency_key"`
	ReceivedAt     time.Time     `json:"received_at"`
	Status         string        `json:"status"`
	Deliveries     []DeliveryOut `json:"deliveries"`
	BodySize       int           `json:"body_size"`
	Headers        []Header      `json:"headers,omitempty"`
	// Body is the raw body: as text when it is valid UTF-8
	// (body_encoding "utf8"), else base64 ("base64").
	Body         string `json:"body,omitempty"`
	BodyEncoding string `json:"body_encoding,omitempty"`
}

// Header is one request header, in the order received.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DeliveryOut is an event's state at one destination.
type DeliveryOut struct {
	Destination   string        `json:"destination"`
	Status        string        `json:"status"`
	Attempts      []wal.Attempt `json:"attempts"`
	NextAttemptAt time.Time     `json:"next_attempt_at,omitzero"`
	ReplayID      string        `json:"replay_id,omitempty"`
	UpdatedAt     time.Time     `json:"updated_at,omitzero"`
}

// EventFilter selects events: for the event list (as query parameters),
// bulk replays and redrives (as JSON). Every field set must match.
type EventFilter struct {
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination,omitempty"`
	// Status is the event's status, or its status at Destination when
	// that is set: pending, delivered, dead_lettered, no_destinations.
	Status string `json:"status,omitempty"`
	// EventType is a type or a pattern ("invoice.*", "orders/*").
	EventType      string    `json:"event_type,omitempty"`
	Since          time.Time `json:"since,omitzero"`
	Until          time.Time `json:"until,omitzero"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
}

func (f *EventFilter) validate() error {
	switch f.Status {
	case "", EventPending, EventDelivered, EventDeadLettered, EventNoDestinations:
	default:
		return errBadRequest("validation_failed", "status", "must be pending, delivered, dead_lettered or no_destinations, got %q", f.Status)
	}
	if f.Source != "" && !model.ValidSlug(f.Source) {
		return errBadRequest("validation_failed", "source", "%q is not a valid slug", f.Source)
	}
	if f.Destination != "" && !model.ValidSlug(f.Destination) {
		return errBadRequest("validation_failed", "destination", "%q is not a valid slug", f.Destination)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return errBadRequest("validation_failed", "until", "is before since")
	}
	return nil
}

// filterFromQuery reads the event filter from query parameters.
func filterFromQuery(q url.Values) (EventFilter, error) {
	known := []string{"source", "destination", "status", "event_type", "since", "until", "idempotency_key", "cursor", "limit"}
	for k := range q {
		if !slices.Contains(known, k) {
			return EventFilter{}, errBadRequest("unknown_field", k, "unknown query parameter %q", k)
		}
	}
	f := EventFilter{
		Source:         q.Get("source"),
		Destination:    q.Get("destination"),
		Status:         q.Get("status"),
		EventType:      q.Get("event_type"),
		IdempotencyKey: q.Get("idempotency_key"),
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, errBadRequest("invalid_query", p.name, "must be an RFC 3339 time (2026-01-02T15:04:05Z), got %q", v)
			}
			*p.t = t
		}
	}
	return f, f.validate()
}

// cheapMatch checks what the event record alone answers.
func (f *EventFilter) cheapMatch(e *wal.Event) bool {
	if f.Source != "" && e.Source != f.Source {
		return false
	}
	if f.Destination != "" && !slices.Contains(e.Destinations, f.Destination) {
		return false
	}
	if f.EventType != "" && !model.MatchEventType([]string{f.EventType}, e.EventType) {
		return false
	}
	if !f.Since.IsZero() && e.ReceivedAt.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !e.ReceivedAt.Before(f.Until) {
		return false
	}
	if f.IdempotencyKey != "" && e.IdemKey != f.IdempotencyKey {
		return false
	}
	return true
}

// sinceSlack is how far before since a scan goes on. Sequences grow with
// time but an event's received_at is taken when its request arrives, a
// little before its sequence is handed out, so neighbours can be out of
// order by a request's processing time; ten minutes is far beyond it.
const sinceSlack = 10 * time.Minute

// scanMatch is match for wal.ListEventsUntil: it also ends the scan once
// events are older than since.
func (s *Server) scanMatch(f *EventFilter) func(*wal.Event) (bool, bool) {
	return func(e *wal.Event) (bool, bool) {
		if !f.Since.IsZero() && e.ReceivedAt.Before(f.Since.Add(-sinceSlack)) {
			return false, true
		}
		return s.match(f, e), false
	}
}

// match checks the whole filter, reading delivery records if the status
// matters.
func (s *Server) match(f *EventFilter, e *wal.Event) bool {
	if !f.cheapMatch(e) {
		return false
	}
	if f.Status == "" {
		return true
	}
	if f.Destination != "" {
		return s.deliveryStatus(f.Destination, e) == f.Status
	}
	return s.eventStatus(e, nil) == f.Status
}

// deliveryStatus is the event's status at dest; an event not yet in the
// destination's queue (still in the outbox) is pending.
func (s *Server) deliveryStatus(dest string, e *wal.Event) string {
	d, err := s.db.GetDelivery(dest, e.Seq)
	if err != nil {
		return wal.StatusPending
	}
	return d.Status
}

// eventStatus derives the event's status from its deliveries (read here
// when ds is nil).
func (s *Server) eventStatus(e *wal.Event, ds []DeliveryOut) string {
	if len(e.Destinations) == 0 {
		return EventNoDestinations
	}
	if ds == nil {
		for _, d := range e.Destinations {
			ds = append(ds, DeliveryOut{Status: s.deliveryStatus(d, e)})
		}
	}
	dead := false
	for _, d := range ds {
		switch d.Status {
		case wal.StatusPending:
			return EventPending
		case wal.StatusDead:
			dead = true
		}
	}
	if dead {
		return EventDeadLettered
	}
	return EventDelivered
}

func (s *Server) eventOut(e *wal.Event, full bool) (EventOut, error) {
	out := EventOut{
		ID:             e.ID(),
		Source:         e.Source,
		EventType:      e.EventType,
		IdempotencyKey: e.IdemKey,
		ReceivedAt:     e.ReceivedAt,
		BodySize:       len(e.Body),
		Deliveries:     []DeliveryOut{},
	}
	for _, dest := range e.Destinations {
		d, err := s.db.GetDelivery(dest, e.Seq)
		switch {
		case errors.Is(err, wal.ErrNotFound):
			out.Deliveries = append(out.Deliveries, DeliveryOut{Destination: dest, Status: wal.StatusPending, Attempts: []wal.Attempt{}})
			continue
		case err != nil:
			return out, err
		}
		do := DeliveryOut{Destination: dest, Status: d.Status, Attempts: d.Attempts, NextAttemptAt: d.NextAt, ReplayID: d.ReplayID, UpdatedAt: d.UpdatedAt}
		if do.Attempts == nil {
			do.Attempts = []wal.Attempt{}
		}
		out.Deliveries = append(out.Deliveries, do)
	}
	out.Status = s.eventStatus(e, out.Deliveries)
	if full {
		out.Headers = make([]Header, 0, len(e.Headers))
		for _, h := range e.Headers {
			out.Headers = append(out.Headers, Header{Name: h[0], Value: h[1]})
		}
		if utf8.Valid(e.Body) {
			out.Body, out.BodyEncoding = string(e.Body), "utf8"
		} else {
			out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(e.Body), "base64"
		}
	}
	return out, nil
}

func parseCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, errBadRequest("invalid_query", "cursor", "not a cursor from a previous page: %q", s)
	}
	return n, nil
}

func formatCursor(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

func (s *Server) listEvents(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	q := r.URL.Query()
	f, err := filterFromQuery(q)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(r, 50, 500)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.ListEvents(f, q.Get("cursor"), limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// ListEvents answers a page of the events matching f, newest first,
// starting after cursor (a previous page's next_cursor; "" is the newest).
func (s *Server) ListEvents(f EventFilter, cursor string, limit int) (Page[EventOut], error) {
	if err := f.validate(); err != nil {
		return Page[EventOut]{}, err
	}
	before, err := parseCursor(cursor)
	if err != nil {
		return Page[EventOut]{}, err
	}
	evs, next, err := s.db.ListEventsUntil(before, limit, s.scanMatch(&f))
	if err != nil {
		return Page[EventOut]{}, err
	}
	items := make([]EventOut, 0, len(evs))
	for _, e := range evs {
		o, err := s.eventOut(e, false)
		if err != nil {
			return Page[EventOut]{}, err
		}
		items = append(items, o)
	}
	return newPage(items, formatCursor(next)), nil
}

// CountEvents counts the events matching f, newest first, looking at no
// more than max events: more reports that it stopped there, so the count
// is a lower bound ("10,000+"). It never scans the whole store.
func (s *Server) CountEvents(f EventFilter, max int) (n int, more bool, err error) {
	if err := f.validate(); err != nil {
		return 0, false, err
	}
	match := s.scanMatch(&f)
	seen := 0
	_, _, err = s.db.ListEventsUntil(0, 1, func(e *wal.Event) (bool, bool) {
		if seen == max {
			more = true
			return false, true
		}
		seen++
		ok, stop := match(e)
		if ok {
			n++
		}
		return false, stop
	})
	return n, more, err
}

func (s *Server) getEvent(_ *http.Request, ps httprouter.Params, _ principal) (int, any, error) {
	out, err := s.Event(ps.ByName("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// Event reads one event with its headers, body and every attempt.
func (s *Server) Event(id string) (EventOut, error) {
	e, err := s.db.GetEventByID(id)
	if err != nil {
		if errors.Is(err, wal.ErrNotFound) {
			return EventOut{}, errNotFound("no event %q", id)
		}
		return EventOut{}, err
	}
	return s.eventOut(e, true)
}

func itoa(i int) string { return strconv.Itoa(i) }
