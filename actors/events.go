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

// DeliveryStatus is e's status at dest. An event not yet in the
// destination's queue (still in the outbox) is pending.
func (n *Node) DeliveryStatus(dest string, e *wal.Event) model.EventStatus {
	d, err := n.db.GetDelivery(dest, e.Seq)
	if err != nil {
		return model.EventPending
	}
	return model.EventStatus(d.Status)
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
