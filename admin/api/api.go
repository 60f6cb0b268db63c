package api

import (
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Prefix is where the API lives: every route but /healthz, /readyz and
// /metrics starts with it.
const Prefix = "/api/v1"

// Error is the one shape every failed request answers with, inside an
// ErrorBody: {"error": {"code", "message", "field"}}. Status is the HTTP
// status; it is not part of the body.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// ErrorBody is the JSON envelope of an Error.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Page is every list's shape: {"items": [...], "next_cursor": "..."}.
// next_cursor is empty at the end; pass it back as ?cursor= for the next
// page.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Token roles.
const (
	// RoleAdmin may do everything.
	RoleAdmin = "admin"
	// RoleRead may read everything (GET) and scrape /metrics, and change
	// nothing.
	RoleRead = "read"
)

// Token is an API token as the API shows it: never the token itself.
type Token struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// TokenRequest is POST /tokens; Role "" is admin.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
}

// CreatedToken is the answer to POST /tokens: the only time the token is
// shown.
type CreatedToken struct {
	Token
	Secret string `json:"token"`
}

// SourceOut is a source as the API shows it: secrets masked, each with an
// id to remove it by. Only the answers that create or rotate a secret
// carry it in clear.
type SourceOut struct {
	model.Source
	SecretIDs []string `json:"secret_ids"`
}

// DestinationOut is a destination as the API shows it: the signing secret
// masked, and, on a single read, its queue.
type DestinationOut struct {
	model.Destination
	Stats *DestinationStats `json:"stats,omitempty"`
}

// DestinationStats is the queue of a destination.
type DestinationStats struct {
	QueueDepth          int       `json:"queue_depth"`
	InFlight            int       `json:"in_flight"`
	OldestPendingAt     time.Time `json:"oldest_pending_at,omitzero"`
	OldestPendingAgeSec float64   `json:"oldest_pending_age_seconds"`
	CircuitOpen         bool      `json:"circuit_open"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	DeadLetters         int       `json:"dead_letters"`
}

// AgentOut is an agent as the API shows it. Secret is set only when the
// agent is created or its secret rotated.
type AgentOut struct {
	model.Agent
	Secret   string    `json:"secret,omitempty"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// EnrollCommand, with Secret, is the agentd command line to start the
	// agent with (the same as an enrollment's command).
	EnrollCommand string `json:"enroll_command,omitempty"`
	// Members, in a cluster, is the agent's session on each member's
	// tunnel (Online and LastSeen above are the answering member's own).
	// The member that delivers an agent-mode destination does it through
	// its own session.
	Members []MemberSession `json:"members,omitempty"`
}

// MemberSession is an agent's session on one cluster member, as that
// member last reported it to the cluster's tunnel directory.
type MemberSession struct {
	Node      uint64    `json:"node"`
	Tunnel    string    `json:"tunnel"` // the member's tunnel address
	Online    bool      `json:"online"`
	Since     time.Time `json:"since,omitzero"`
	Remote    string    `json:"remote,omitempty"`
	Transport string    `json:"transport,omitempty"`
	// ReportedAt is when the member made the report; Reachable, whether
	// the answering member could reach it just now (a member that died
	// leaves its last report behind).
	ReportedAt time.Time `json:"reported_at"`
	Reachable  bool      `json:"reachable"`
}

// MemberListener is a forward on one cluster member, as that member last
// reported it: whether it listens (or why not) and whether the agent has
// a session there (a connection accepted without one is refused).
type MemberListener struct {
	Node        uint64    `json:"node"`
	Listening   bool      `json:"listening"`
	Error       string    `json:"error,omitempty"`
	AgentOnline bool      `json:"agent_online"`
	ReportedAt  time.Time `json:"reported_at"`
	Reachable   bool      `json:"reachable"`
}

// TunnelEndpoint is one tunnel an agent dials: a single node's, or one
// cluster member's (Node set).
type TunnelEndpoint struct {
	Node        uint64 `json:"node,omitempty"`
	Addr        string `json:"addr"`
	Fingerprint string `json:"fingerprint"`
}

// SecretRotation is the answer to a secret rotation: the new secret, the
// only time it is shown.
type SecretRotation struct {
	Secret   string `json:"secret"`
	SecretID string `json:"secret_id"`
	// Source or Destination is the object after the rotation, masked.
	Source      *SourceOut      `json:"source,omitempty"`
	Destination *DestinationOut `json:"destination,omitempty"`
}

// SecretRequest is the optional body of a rotation: a secret the provider
// issued (Stripe and GitHub make their own); empty generates one.
type SecretRequest struct {
	Secret string `json:"secret,omitempty"`
}

// Enrollment is what an agent needs to join the tunnel: the agentd
// command line, ready to paste, and its parts. It is the only answer that
// shows the agent's secret.
type Enrollment struct {
	Command string `json:"command"`
	// Tunnel and ServerFingerprint are the answering node's tunnel.
	Tunnel            string `json:"tunnel"`
	ID                string `json:"id"`
	Secret            string `json:"secret"`
	ServerFingerprint string `json:"server_fingerprint"`
	// Tunnels is every tunnel the agent joins (the command names them
	// all): the node's, or every cluster member's, by node id.
	Tunnels        []TunnelEndpoint `json:"tunnels"`
	AllowedTargets []string         `json:"allowed_targets"`
	// Created is true when the agent did not exist before, false when
	// its secret was rotated (which cut its live session).
	Created bool `json:"created"`
}

// EnrollmentRequest is the optional body of an enrollment. AllowedTargets,
// when present (even empty), replaces the agent's list; absent keeps it.
type EnrollmentRequest struct {
	AllowedTargets []string `json:"allowed_targets"`
}

// ForwardOut is a forward as the API shows it.
type ForwardOut struct {
	model.Forward
	// AgentOnline reports whether the agent the forward goes through has
	// a live session; while it has none, connections are refused.
	AgentOnline bool `json:"agent_online"`
	// Members, in a cluster, says which members listen for the forward
	// and have the agent in session (AgentOnline is the answering
	// member's own).
	Members []MemberListener `json:"members,omitempty"`
}
