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
