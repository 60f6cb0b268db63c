package model

import "time"

// Attempt is one try at delivering an event to a destination: stored in
// the delivery record and shown as is by the API.
type Attempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	DurationMS float64   `json:"duration_ms"`
	StatusCode int       `json:"status_code,omitempty"`
	Response   string    `json:"response,omitempty"`
	Error      string    `json:"error,omitempty"`
	ReplayID   string    `json:"replay_id,omitempty"`
}

// AuditEntry is one state transition of the audit log: stored by wal and
// listed as is by the API.
type AuditEntry struct {
	Seq        uint64            `json:"seq"`
	At         time.Time         `json:"at"`
	Action     string            `json:"action"`
	ObjectType string            `json:"object_type"`
	ObjectID   string            `json:"object_id"`
	Actor      string            `json:"actor,omitempty"`
	ReplayID   string            `json:"replay_id,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
}

// Delivery statuses: where one event stands at one destination. They are
// plain strings because the admin API's event status (which adds
// "no_destinations") is built from them.
const (
	// StatusPending: queued, possibly waiting for a retry.
	StatusPending = "pending"
	// StatusDelivered: the receiver answered 2xx.
	StatusDelivered = "delivered"
	// StatusDead: max_attempts failed; the event is in the dead-letter queue.
	StatusDead = "dead_lettered"
)

// Delivery is an event's state at one destination, with every attempt.
type Delivery struct {
	Destination string    `json:"destination"`
	EventID     string    `json:"event_id"`
	Status      string    `json:"status"`
	QSeq        uint64    `json:"qseq,omitempty"`
	Attempts    []Attempt `json:"attempts"`
	// AttemptsBase is len(Attempts) when the current round (first
	// delivery or a replay) began: max_attempts counts from here.
	AttemptsBase int       `json:"attempts_base,omitempty"`
	NextAt       time.Time `json:"next_attempt_at,omitzero"`
	ReplayID     string    `json:"replay_id,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}
