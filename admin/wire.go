package admin

import (
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"
)

// The API's wire types live in package api (a leaf the client links
// without the server); the server names them as its own.
type (
	Error              = api.Error
	ErrorBody          = api.ErrorBody
	Page[T any]        = api.Page[T]
	SourceOut          = api.SourceOut
	DestinationOut     = api.DestinationOut
	DestinationStats   = api.DestinationStats
	AgentOut           = api.AgentOut
	SecretRotation     = api.SecretRotation
	Enrollment         = api.Enrollment
	EnrollmentRequest  = api.EnrollmentRequest
	ForwardOut         = api.ForwardOut
	EventOut           = api.EventOut
	Header             = api.Header
	DeliveryOut        = api.DeliveryOut
	DeadLetter         = api.DeadLetter
	ReplayRequest      = api.ReplayRequest
	EventReplayRequest = api.EventReplayRequest
	RedriveRequest     = api.RedriveRequest
	AuditFilter        = api.AuditFilter
	CreatedToken       = api.CreatedToken
	EventFilter        = model.EventFilter
	Replay             = model.Replay
)

// APIPrefix is where the API lives.
const APIPrefix = api.Prefix

// Event and replay statuses.
const (
	EventPending        = model.EventPending
	EventDelivered      = model.EventDelivered
	EventDeadLettered   = model.EventDeadLettered
	EventNoDestinations = model.EventNoDestinations

	ReplayQueued    = model.ReplayQueued
	ReplayRunning   = model.ReplayRunning
	ReplayCompleted = model.ReplayCompleted
	ReplayFailed    = model.ReplayFailed
)
