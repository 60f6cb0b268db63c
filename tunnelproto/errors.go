package tunnelproto

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is; the returned errors wrap
// them with the operation and, where there is one, the peer's reason.
var (
	// ErrAgentOffline: no authenticated session for the agent.
	ErrAgentOffline = errors.New("tunnelproto: agent offline")
	// ErrTargetNotAllowed: the target is outside the agent's allowed targets,
	// as decided by the server or by the agent itself.
	ErrTargetNotAllowed = errors.New("tunnelproto: target not allowed")
	// ErrDialFailed: the agent could not connect to the target.
	ErrDialFailed = errors.New("tunnelproto: dial failed")
	// ErrRefused: the server refused the handshake; the error carries a *RefusedError.
	ErrRefused = errors.New("tunnelproto: refused")
	// ErrPinMismatch: the server's certificate does not match the pinned fingerprint.
	ErrPinMismatch = errors.New("tunnelproto: server certificate does not match the pinned fingerprint")
	// ErrGoAway: the peer ended the session with GOAWAY; the error carries a *GoAwayError.
	ErrGoAway = errors.New("tunnelproto: session ended by peer")
	// ErrServerClosed: the server was closed.
	ErrServerClosed = errors.New("tunnelproto: server closed")
	// ErrFrameTooLarge: a frame header announced a payload above MaxPayloadLen.
	ErrFrameTooLarge = errors.New("tunnelproto: frame too large")
	// ErrUnsupportedVersion: a frame header carried another protocol version.
	ErrUnsupportedVersion = errors.New("tunnelproto: unsupported protocol version")
	// ErrMalformed: a frame's payload does not follow the spec.
	ErrMalformed = errors.New("tunnelproto: malformed frame")
	// ErrUnexpectedFrame: a known frame arrived where the protocol does not allow it.
	ErrUnexpectedFrame = errors.New("tunnelproto: unexpected frame")
	// ErrHeartbeatTimeout: the peer stopped answering heartbeats.
	ErrHeartbeatTimeout = errors.New("tunnelproto: heartbeat timeout")
	// ErrInvalidConfig: a config failed Validate.
	ErrInvalidConfig = errors.New("tunnelproto: invalid config")
)

// RefusedError is the reason a server gave for refusing a handshake. It
// matches ErrRefused with errors.Is.
type RefusedError struct {
	Code   Code
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Reason == "" || e.Reason == e.Code.String() {
		return fmt.Sprintf("tunnelproto: refused: %s", e.Code)
	}
	return fmt.Sprintf("tunnelproto: refused: %s: %s", e.Code, e.Reason)
}

// Is reports ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// GoAwayError says why the peer ended a session. It matches ErrGoAway.
type GoAwayError struct {
	Code   Code
	Reason string
}

func (e *GoAwayError) Error() string {
	if e.Reason == "" || e.Reason == e.Code.String() {
		return fmt.Sprintf("tunnelproto: session ended by peer: %s", e.Code)
	}
	return fmt.Sprintf("tunnelproto: session ended by peer: %s: %s", e.Code, e.Reason)
}

// Is reports ErrGoAway.
func (e *GoAwayError) Is(target error) bool { return target == ErrGoAway }
