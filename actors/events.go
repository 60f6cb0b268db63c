package actors

import (
	"slices"
	"time"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// sinceSlack is how far before a filter's since a scan goes on. Sequences
// grow with time but an event's received_at is taken when its request
// arrives, a little before its sequence is handed out, so neighbours can
// be out of order by a request's processing time; ten minutes is far
// beyond it.
const sinceSlack = 10 * time.Minute

// MatchEventRecord checks what the event record alone answers: every field of
// f but Status.
func MatchEventRecord(f *model.EventFilter, e *wal.Event) bool {
	switch {
	case f.Source != "" && e.Source != f.Source,
		f.Destination != "" && !slices.Contains(e.Destinations, f.Destination),
		f.EventType != "" && !model.MatchEventType([]string{f.EventType}, e.EventType),
		!f.Since.IsZero() && e.ReceivedAt.Before(f.Since),
		!f.Until.IsZero() && !e.ReceivedAt.Before(f.Until),
		f.IdempotencyKey != "" && e.IdemKey != f.IdempotencyKey:
		return false
	}
	return true
}

// EventScan is f as the match function of wal.DB.ListEventsUntil (newest
// first): it reads delivery records only when f.Status is set, and ends
// the scan once events are older than f.Since.
func (n *Node) EventScan(f model.EventFilter) func(*wal.Event) (match, stop bool) {
	return func(e *wal.Event) (bool, bool) {
		if !f.Since.IsZero() && e.ReceivedAt.Before(f.Since.Add(-sinceSlack)) {
			return false, true
		}
		return n.matchEvent(&f, e), false
	}
}

func (n *Node) matchEvent(f *model.EventFilter, e *wal.Event) bool {
	if !MatchEventRecord(f, e) {
		return false
	}
	if f.Status == "" {
		return true
	}
	if f.Destination != "" {
		return n.DeliveryStatus(f.Destination, e) == f.Status
	}
	ds := make([]model.EventStatus, 0, len(e.Destinations))
	for _, d := range e.Destinations {
		ds = append(ds, n.DeliveryStatus(d, e))
	}
	return EventStatus(ds) == f.Status
}

// EventQuery is f as a query of wal.DB.QueryEvents before a cursor (0:
// from the newest): EventScan over the candidates of the narrowest index
// f allows, below the sequence its Until bounds. The index narrows the
// candidates; EventScan decides on each, so a list is the same whichever
// index it read.
//
// Statuses follow from the indexes: pending is a pending entry (queued
// or in the outbox) at some destination; dead-lettered is a dead-letter
// entry and no pending one; delivered is neither, nor routed nowhere.
// exact reports that f asks for nothing but that (a status, a destination,
// or both), so the indexes alone count its events, reading none: over the
// destinations an event has a delivery state at, which are its own but
// for a bulk replay sent to another one.
func (n *Node) EventQuery(f model.EventFilter, before uint64) (q wal.EventQuery, exact bool, err error) {
	q = wal.EventQuery{Before: before, Match: n.EventScan(f)}
	if !f.Until.IsZero() {
		// An event received at until+slack or later: every event after it
		// was received at until or later.
		s, err := n.db.SeqAt(f.Until.Add(sinceSlack))
		if err != nil {
			return q, false, err
		}
		if s > 0 && (q.Before == 0 || s < q.Before) {
			q.Before = s
		}
	}
	pending, dead := wal.Index{From: wal.PendingAt, Dest: f.Destination}, wal.Index{From: wal.DeadAt, Dest: f.Destination}
	switch {
	case f.IdempotencyKey != "":
		q.From, q.Source, q.IdemKey = wal.WithKey, f.Source, f.IdempotencyKey
	case f.Status == model.EventNoDestinations:
		q.From = wal.NoDestinations
	case f.Status == model.EventPending:
		q.From, q.Dest = wal.PendingAt, f.Destination
	case f.Status == model.EventDeadLettered:
		q.From, q.Dest = wal.DeadAt, f.Destination
		if f.Destination == "" {
			q.Minus = []wal.Index{pending}
		}
	case f.Status == model.EventDelivered && f.Destination != "":
		q.From, q.Dest, q.Minus = wal.RoutedAt, f.Destination, []wal.Index{pending, dead}
	case f.Status == model.EventDelivered:
		q.Minus = []wal.Index{pending, dead, {From: wal.NoDestinations}}
	case f.Destination != "":
		q.From, q.Dest = wal.RoutedAt, f.Destination
	}
	exact = f.Source == "" && f.EventType == "" && f.Since.IsZero() && f.Until.IsZero() && f.IdempotencyKey == "" &&
		(f.Destination == "" || f.Status != model.EventNoDestinations)
	return q, exact, nil
}

// DeliveryStatus is e's status at dest. An event not yet in the
// destination's queue (still in the outbox) is pending.
func (n *Node) DeliveryStatus(dest string, e *wal.Event) model.EventStatus {
	s, err := n.db.DeliveryStatus(dest, e.Seq)
	if err != nil {
		return model.EventPending
	}
	return model.EventStatus(s)
}

// EventStatus derives an event's status from its status at each of its
// destinations: pending while one is, else dead-lettered if one was, else
// delivered; no destinations at all is its own status.
func EventStatus(atDestinations []model.EventStatus) model.EventStatus {
	if len(atDestinations) == 0 {
		return model.EventNoDestinations
	}
	dead := false
	for _, s := range atDestinations {
		switch s {
		case model.EventPending:
			return model.EventPending
		case model.EventDeadLettered:
			dead = true
		}
	}
	if dead {
		return model.EventDeadLettered
	}
	return model.EventDelivered
}
