package admin

import (
	"encoding/base64"
	"errors"
	"github.com/webhookops/webhookops/ingress/verify"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal/model"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/wal"
)

// validateFilter checks an event filter, naming the field at fault.
func validateFilter(f *EventFilter) error {
	if err := f.Validate(); err != nil {
		return toError(err)
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
		Status:         model.EventStatus(q.Get("status")),
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
	return f, validateFilter(&f)
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
	statuses := make([]model.EventStatus, 0, len(e.Destinations))
	for _, dest := range e.Destinations {
		d, err := s.db.GetDelivery(dest, e.Seq)
		switch {
		case errors.Is(err, wal.ErrNotFound):
			out.Deliveries = append(out.Deliveries, DeliveryOut{Destination: dest, Status: model.EventPending, Attempts: []model.Attempt{}})
			statuses = append(statuses, model.EventPending)
			continue
		case err != nil:
			return out, err
		}
		do := DeliveryOut{Destination: dest, Status: model.EventStatus(d.Status), Attempts: d.Attempts, NextAttemptAt: d.NextAt, ReplayID: d.ReplayID, UpdatedAt: d.UpdatedAt}
		if do.Attempts == nil {
			do.Attempts = []model.Attempt{} // a list reads [], never null
		}
		out.Deliveries = append(out.Deliveries, do)
		statuses = append(statuses, do.Status)
	}
	out.Status = actors.EventStatus(statuses)
	if full {
		out.Headers = make([]Header, 0, len(e.Headers))
		for _, h := range e.Headers {
			v := h[1]
			if verify.SignatureHeader(h[0]) {
				v = "****" // with the body, a signature is a request anyone could send again
			}
			out.Headers = append(out.Headers, Header{Name: h[0], Value: v})
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

// pageBudget bounds the work of one page of events (wal.EventQuery's
// Budget): about 10,000 events read in a run, or 1,000 read one by one
// from an index. A filter that few events match gets a short page (even
// an empty one) with a next cursor, rather than a page that reads a
// million events.
const pageBudget = 10_000

// pageTime bounds it too, whatever the machine's load and the state of the
// block cache; countTime bounds a count that has to read events.
const (
	pageTime  = 25 * time.Millisecond
	countTime = 15 * time.Millisecond
)

// ListEvents answers a page of the events matching f, newest first,
// starting after cursor (a previous page's next_cursor; "" is the newest).
// A page may be short, even empty, while its next cursor is set: it
// looked at pageBudget's worth of events, or for pageTime, and stopped
// there.
func (s *Server) ListEvents(f EventFilter, cursor string, limit int) (Page[EventOut], error) {
	if err := validateFilter(&f); err != nil {
		return Page[EventOut]{}, err
	}
	before, err := parseCursor(cursor)
	if err != nil {
		return Page[EventOut]{}, err
	}
	q, _, err := s.node.EventQuery(f, before)
	if err != nil {
		return Page[EventOut]{}, err
	}
	q.Budget, q.Deadline = pageBudget, time.Now().Add(pageTime)
	evs, next, err := s.db.QueryEvents(q, limit)
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

// EventCount is a bounded count of the events matching a filter.
type EventCount struct {
	N int
	// More: the count stopped; N is a lower bound ("10,000+").
	More bool
	// Looked is how many events the count read to decide, when it had to
	// read them (0: the indexes alone answered).
	Looked int
}

// CountEvents counts the events matching f, newest first, never scanning
// the whole store. A filter on a status or a destination alone is counted
// from the indexes up to max entries, reading no event (see
// actors.Node.EventQuery); any other reads the events it looks at, within
// pageBudget, countTime and max events.
func (s *Server) CountEvents(f EventFilter, max int) (EventCount, error) {
	if err := validateFilter(&f); err != nil {
		return EventCount{}, err
	}
	q, exact, err := s.node.EventQuery(f, 0)
	if err != nil {
		return EventCount{}, err
	}
	if exact {
		q.Match = nil
	} else {
		q.Budget, q.Deadline = pageBudget, time.Now().Add(countTime)
	}
	c, err := s.db.CountQuery(q, max)
	out := EventCount{N: c.N, More: c.More}
	if !exact {
		out.Looked = c.Looked
	}
	return out, err
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
