package api

import (
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// EventOut is an event as the API shows it. Headers and Body are filled on
// a single read (GET /events/{id}), not in lists.
type EventOut struct {
	ID             string            `json:"id"`
	Source         string            `json:"source"`
	EventType      string            `json:"event_type"`
	IdempotencyKey string            `json:"idempotency_key"`
	ReceivedAt     time.Time         `json:"received_at"`
	Status         model.EventStatus `json:"status"`
	Deliveries     []DeliveryOut     `json:"deliveries"`
	BodySize       int               `json:"body_size"`
	Headers        []Header          `json:"headers,omitempty"`
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
	Destination   string            `json:"destination"`
	Status        model.EventStatus `json:"status"`
	Attempts      []model.Attempt   `json:"attempts"`
	NextAttemptAt time.Time         `json:"next_attempt_at,omitzero"`
	ReplayID      string            `json:"replay_id,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at,omitzero"`
}

// DeadLetter is one dead-lettered event at a destination.
type DeadLetter struct {
	EventID    string         `json:"event_id"`
	Source     string         `json:"source"`
	EventType  string         `json:"event_type"`
	ReceivedAt time.Time      `json:"received_at"`
	Attempts   int            `json:"attempts"`
	Last       *model.Attempt `json:"last_attempt,omitempty"`
}

// ReplayRequest is POST /replays: the event list's filters, a reason, and
// All to confirm replaying everything when no filter is set.
type ReplayRequest struct {
	model.EventFilter
	Reason string `json:"reason,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// EventReplayRequest is POST /events/{id}/replay.
type EventReplayRequest struct {
	// Destination limits the replay to one of the event's destinations.
	Destination string `json:"destination,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// RedriveRequest is POST /destinations/{slug}/dead-letters/redrive: every
// dead letter of the destination, or those matching.
type RedriveRequest struct {
	EventIDs  []string  `json:"event_ids,omitempty"`
	EventType string    `json:"event_type,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

// AuditFilter selects audit entries (GET /audit's query). Action matches
// exactly, or as a prefix when it ends in "." or "*" ("delivery.",
// "replay.*").
type AuditFilter struct {
	Action     string
	ObjectType string
	ObjectID   string
	ReplayID   string
	Actor      string
	Since      time.Time
	Until      time.Time
}
