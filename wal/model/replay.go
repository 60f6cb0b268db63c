package model

import (
	"encoding/binary"
	"encoding/hex"
	"time"
)

// EventStatus is an event's state, at one destination or over all of them.
type EventStatus string

// Event statuses. Pending, Delivered and DeadLettered are also the states
// of one delivery; NoDestinations is an event no route matched.
const (
	// EventPending: at least one destination has not finished.
	EventPending EventStatus = "pending"
	// EventDelivered: every destination accepted it.
	EventDelivered EventStatus = "delivered"
	// EventDeadLettered: every destination finished and at least one
	// dead-lettered it.
	EventDeadLettered EventStatus = "dead_lettered"
	// EventNoDestinations: no route matched it.
	EventNoDestinations EventStatus = "no_destinations"
)

func (s EventStatus) String() string { return string(s) }

// Valid reports whether s is one of the statuses above.
func (s EventStatus) Valid() bool {
	switch s {
	case EventPending, EventDelivered, EventDeadLettered, EventNoDestinations:
		return true
	}
	return false
}

// EventFilter selects events: for the event list, bulk replays and
// redrives. Every field set must match.
type EventFilter struct {
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination,omitempty"`
	// Status is the event's status, or its status at Destination when
	// that is set.
	Status EventStatus `json:"status,omitempty"`
	// EventType is a type or a pattern ("invoice.*", "orders/*").
	EventType      string    `json:"event_type,omitempty"`
	Since          time.Time `json:"since,omitzero"`
	Until          time.Time `json:"until,omitzero"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
}

// IsZero reports whether no field is set: the filter matches every event.
func (f EventFilter) IsZero() bool { return f == EventFilter{} }

// Validate checks the filter's fields on their own.
func (f EventFilter) Validate() error {
	if f.Status != "" && !f.Status.Valid() {
		return fieldErr("status", "must be pending, delivered, dead_lettered or no_destinations, got %q", string(f.Status))
	}
	if f.Source != "" && !ValidSlug(f.Source) {
		return fieldErr("source", "%q is not a valid slug", f.Source)
	}
	if f.Destination != "" && !ValidSlug(f.Destination) {
		return fieldErr("destination", "%q is not a valid slug", f.Destination)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fieldErr("until", "is before since")
	}
	return nil
}

// ReplayStatus is where a replay is.
type ReplayStatus string

// Replay statuses: queued and running, then completed or failed.
const (
	ReplayQueued    ReplayStatus = "queued"
	ReplayRunning   ReplayStatus = "running"
	ReplayCompleted ReplayStatus = "completed"
	ReplayFailed    ReplayStatus = "failed"
)

func (s ReplayStatus) String() string { return string(s) }

// Finished reports whether the replay will change no more.
func (s ReplayStatus) Finished() bool { return s == ReplayCompleted || s == ReplayFailed }

// Replay is a replay's record, kept in the store so it reads the same
// after a restart, and shown as is by the API. Total counts deliveries
// (event × destination), not events; Events counts the events.
type Replay struct {
	ID          string       `json:"id"`
	Status      ReplayStatus `json:"status"`
	Total       int          `json:"total"`
	Succeeded   int          `json:"succeeded"`
	Failed      int          `json:"failed"`
	Events      int          `json:"events"`
	Reason      string       `json:"reason,omitempty"`
	RequestedBy string       `json:"requested_by"`
	CreatedAt   time.Time    `json:"created_at"`
	FinishedAt  time.Time    `json:"finished_at,omitzero"`
	// What was replayed: one event, the dead letters of Destination, or
	// the events matching Filter. Destination, when set, is the only
	// destination replayed to.
	EventID     string       `json:"event_id,omitempty"`
	Destination string       `json:"destination,omitempty"`
	DeadLetters bool         `json:"dead_letters,omitempty"`
	EventIDs    []string     `json:"event_ids,omitempty"`
	Filter      *EventFilter `json:"filter,omitempty"`
	// ScanDone is set once every delivery of the replay has been sent.
	ScanDone bool   `json:"scan_done"`
	Error    string `json:"error,omitempty"`
	// In a cluster a replay is carried out by the members that deliver
	// its destinations, one part on each under the replay's id. A part's
	// Destinations are the ones its member replays to (none: Destination,
	// or every destination of each event); a record read through the API
	// sums the parts and lists their Members.
	Destinations []string `json:"destinations,omitempty"`
	Members      []uint64 `json:"members,omitempty"`
}

// ValidReplayID reports whether id has the form replay ids are made in:
// "rpl_" and 24 lower-case hex digits.
func ValidReplayID(id string) bool {
	if len(id) != 28 || id[:4] != "rpl_" {
		return false
	}
	for _, c := range id[4:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// EventID formats an event id: "evt_" and the hex of the partition (2
// bytes) and sequence (8 bytes), so ids of one partition sort by sequence.
func EventID(part uint16, seq uint64) string {
	var b [4 + 20]byte
	copy(b[:], "evt_")
	var raw [10]byte
	binary.BigEndian.PutUint16(raw[:2], part)
	binary.BigEndian.PutUint64(raw[2:], seq)
	hex.Encode(b[4:], raw[:])
	return string(b[:])
}

// ParseEventID is the inverse of EventID; ok is false for anything
// EventID could not have made.
func ParseEventID(id string) (part uint16, seq uint64, ok bool) {
	if len(id) != 24 || id[:4] != "evt_" {
		return 0, 0, false
	}
	var raw [10]byte
	if _, err := hex.Decode(raw[:], []byte(id[4:])); err != nil {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(raw[:2]), binary.BigEndian.Uint64(raw[2:]), true
}
