package destsm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Effect is an output of Step: something the shell must do. Each has a
// String form, which is how the tests read them.
type Effect interface {
	fmt.Stringer
	isEffect()
}

// Write asks for ops to become durable together, in this order, after
// every Write before it. The shell reports the outcome as Committed{ID}.
// Locally that is one batch through the group committer; in a cluster it
// can be a proposal to the destination's partition instead: the machine
// does not care how, only that the outcome comes back.
type Write struct {
	ID  uint64
	Ops []Op
}

// Load asks for up to Limit queue entries with QSeq > After, answered with
// Loaded before the next message.
type Load struct {
	After uint64
	Limit int
}

// StartAttempt asks for one delivery attempt; the shell reports it as
// AttemptDone{Attempt: ID} (or Unreadable when the event cannot be read).
//
// After, when not 0, chains it to an earlier attempt of an ordered
// destination: the shell starts it only once attempt After ended with a
// 2xx, and otherwise does not start it at all and reports Skipped{ID}. The
// shell reports chained attempts in the order it was given them.
type StartAttempt struct {
	ID       uint64
	After    uint64
	QSeq     uint64
	Part     uint16
	Seq      uint64
	EventID  string
	N        int // 1-based attempt number, counted over all rounds
	ReplayID string
	Payload  any // Enqueue.Payload, nil when the entry was loaded from disk
}

// Recall asks the shell not to start the chained attempts it was handed
// with an ID up to UpTo that it has not started yet, and to report each of
// them Skipped.
type Recall struct{ UpTo uint64 }

// SetTimer arms the one timer at At, replacing any earlier one; a zero At
// only disarms it. When it fires the shell sends Tick{At}.
type SetTimer struct{ At time.Time }

// DeadLettered reports an event moved to the dead-letter queue (metrics).
type DeadLettered struct{ EventID string }

// ReplayFinished reports that a replayed delivery finished.
type ReplayFinished struct {
	ReplayID, EventID string
	Delivered         bool
}

// Fail means a write failed: the machine's state is no longer what is on
// disk. The shell must stop this machine (the actor fails, its supervisor
// restarts it, and the new one starts from disk). No Step may follow.
type Fail struct{ Err error }

// Passivate means the machine is idle with nothing in memory or in flight:
// the shell may stop it.
type Passivate struct{}

func (Write) isEffect()          {}
func (Load) isEffect()           {}
func (StartAttempt) isEffect()   {}
func (SetTimer) isEffect()       {}
func (Recall) isEffect()         {}
func (DeadLettered) isEffect()   {}
func (ReplayFinished) isEffect() {}
func (Fail) isEffect()           {}
func (Passivate) isEffect()      {}

// Op is one key written or deleted by a Write.
type Op interface {
	fmt.Stringer
	isOp()
}

type (
	// PutQueue appends event (Part, Seq) to the queue at QSeq.
	PutQueue struct {
		QSeq uint64
		Part uint16
		Seq  uint64
	}
	// DeleteQueue removes a finished entry, event Seq at QSeq, from the
	// queue.
	DeleteQueue struct{ QSeq, Seq uint64 }
	// DeleteOutbox acknowledges event (Part, Seq)'s outbox entry for this
	// destination.
	DeleteOutbox struct {
		Part uint16
		Seq  uint64
	}
	// PutDelivery stores the event's delivery record (and its dead-letter
	// index entry when the status is dead).
	PutDelivery struct {
		Seq uint64
		Rec model.Delivery
	}
	// DeleteDead removes the event from the dead-letter index.
	DeleteDead struct{ Seq uint64 }
	// Audit records a state transition of one event at this destination.
	Audit struct {
		At       time.Time
		Action   string
		EventID  string
		ReplayID string
		Detail   map[string]string
	}
)

func (PutQueue) isOp()     {}
func (DeleteQueue) isOp()  {}
func (DeleteOutbox) isOp() {}
func (PutDelivery) isOp()  {}
func (DeleteDead) isOp()   {}
func (Audit) isOp()        {}

func (w Write) String() string {
	ops := make([]string, len(w.Ops))
	for i, o := range w.Ops {
		ops[i] = o.String()
	}
	return fmt.Sprintf("write#%d[%s]", w.ID, strings.Join(ops, " "))
}

func (l Load) String() string { return fmt.Sprintf("load(after=%d limit=%d)", l.After, l.Limit) }

func (s StartAttempt) String() string {
	r := ""
	if s.ReplayID != "" {
		r = " replay=" + s.ReplayID
	}
	if s.After != 0 {
		r += fmt.Sprintf(" after=#%d", s.After)
	}
	if s.Payload != nil {
		r += " +event"
	}
	return fmt.Sprintf("attempt#%d(q%d e%d n=%d%s)", s.ID, s.QSeq, s.Seq, s.N, r)
}

func (s SetTimer) String() string {
	if s.At.IsZero() {
		return "timer(off)"
	}
	return "timer(" + s.At.UTC().Format("15:04:05.000") + ")"
}

func (r Recall) String() string { return fmt.Sprintf("recall(up to #%d)", r.UpTo) }

func (d DeadLettered) String() string { return "dead-lettered(" + d.EventID + ")" }

func (r ReplayFinished) String() string {
	return fmt.Sprintf("replay-finished(%s %s delivered=%v)", r.ReplayID, r.EventID, r.Delivered)
}

func (f Fail) String() string { return fmt.Sprintf("fail(%v)", f.Err) }

func (Passivate) String() string { return "passivate" }

func (o PutQueue) String() string     { return fmt.Sprintf("put-queue(q%d e%d)", o.QSeq, o.Seq) }
func (o DeleteQueue) String() string  { return fmt.Sprintf("del-queue(q%d)", o.QSeq) }
func (o DeleteOutbox) String() string { return fmt.Sprintf("del-outbox(e%d)", o.Seq) }
func (o DeleteDead) String() string   { return fmt.Sprintf("del-dead(e%d)", o.Seq) }

func (o PutDelivery) String() string {
	s := fmt.Sprintf("put-delivery(e%d %s attempts=%d", o.Seq, o.Rec.Status, len(o.Rec.Attempts))
	if !o.Rec.NextAt.IsZero() {
		s += " next=" + o.Rec.NextAt.UTC().Format("15:04:05.000")
	}
	if o.Rec.ReplayID != "" {
		s += " replay=" + o.Rec.ReplayID
	}
	return s + ")"
}

func (o Audit) String() string {
	var b strings.Builder
	b.WriteString("audit(" + o.Action)
	for _, k := range slices.Sorted(maps.Keys(o.Detail)) {
		if k == "destination" {
			continue
		}
		fmt.Fprintf(&b, " %s=%s", k, o.Detail[k])
	}
	return b.String() + ")"
}
