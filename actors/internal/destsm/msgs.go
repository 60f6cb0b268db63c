package destsm

import (
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Msg is an input to Step.
type Msg interface{ isMsg() }

// Enqueue appends an event to the queue.
type Enqueue struct {
	Part    uint16
	Seq     uint64
	EventID string
	// FromOutbox: the event came through the outbox; the write that appends
	// it also acknowledges (deletes) its outbox entry.
	FromOutbox bool
	// Recovered: the shell took this entry from the outbox itself when the
	// machine started after a failure. The message that carried it may still
	// be in the mailbox; when it arrives it is dropped as a duplicate.
	Recovered bool
	// ReplayID is set for a replay. Prior is then the event's delivery
	// record on disk at this destination (nil when it has none).
	ReplayID string
	Prior    *model.Delivery
	// Payload is the event itself, opaque to the machine and handed back in
	// StartAttempt, so an event enqueued live is not read back from disk.
	Payload any
}

// Entry is one queue entry read from disk.
type Entry struct {
	QSeq    uint64
	Part    uint16
	Seq     uint64
	EventID string
	// Rec is the entry's delivery record; nil means pending with no
	// attempts (the hot path writes no record for a fresh event).
	Rec *model.Delivery
}

// Loaded answers a Load effect: the entries read, in queue order.
type Loaded struct{ Entries []Entry }

// Result is the outcome of one attempt, as the delivery client saw it.
type Result struct {
	Success    bool
	StatusCode int
	// RetryAfter is the receiver's Retry-After on a 429 or 503, 0 if none.
	RetryAfter time.Duration
	Duration   time.Duration
	Response   string
	Err        string
}

// AttemptDone reports the end of an attempt started by StartAttempt.
type AttemptDone struct {
	Attempt uint64 // StartAttempt.ID
	Started time.Time
	Result  Result
}

// Skipped reports that a chained attempt (StartAttempt.After) was not
// started because the attempt it followed did not end with a 2xx.
type Skipped struct {
	Attempt uint64 // StartAttempt.ID
}

// Unreadable reports that the event of a started attempt could not be read:
// it is dead-lettered at once, since no retry can make it readable.
type Unreadable struct {
	Attempt uint64 // StartAttempt.ID
	Err     string
}

// Committed reports the outcome of a Write.
type Committed struct {
	Write uint64 // Write.ID
	Err   error
}

// Tick reports that the timer armed by SetTimer{At} fired.
type Tick struct{ At time.Time }

// Reconfigure gives the machine its destination's new configuration.
type Reconfigure struct {
	Dest   model.Destination
	Exists bool
}

// Idle reports that no message came for the passivation timeout.
type Idle struct{}

// DeadExpired reports that retention removed n of the destination's
// dead-lettered events.
type DeadExpired struct{ N int64 }

func (Enqueue) isMsg()     {}
func (Loaded) isMsg()      {}
func (AttemptDone) isMsg() {}
func (Unreadable) isMsg()  {}
func (Skipped) isMsg()     {}
func (Committed) isMsg()   {}
func (Tick) isMsg()        {}
func (Reconfigure) isMsg() {}
func (Idle) isMsg()        {}
func (DeadExpired) isMsg() {}
