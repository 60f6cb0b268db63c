package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
)

// Writer makes a destination's writes durable through replication: the
// cluster counterpart of the actors' local writer (same Write signature,
// the same destsm ops), and the actors.Member a member's node delivers
// with. Queue, delivery and dead-letter writes go to the destination's
// partition as one owner write, fenced by this node's takeover; outbox
// deletions go afterwards, as acknowledgements to each event's partition;
// audit entries stay on this node. Writes of one destination are applied
// in the order given; an error (ErrNotOwner when this node no longer owns
// the partition) is the machine's cue to stop.
//
// Two things are added to what the machine asks for, in the same owner
// write:
//
//   - An event put in the queue gets a pending delivery record unless the
//     write carries one. It marks the event as taken: a new owner finds
//     it when an acknowledgement did not land and acknowledges instead of
//     queueing the event twice, and the partition refuses a second inbox
//     entry for it.
//   - An outbox acknowledgement also deletes the event's inbox entry.
//
// Acknowledgements are not waited for: they go in the background, one
// proposal per partition for whatever waits (any destination). A failed
// one is logged, not returned: the queue write is durable, and whoever
// takes the destination over next acknowledges again.
//
// Writes of one destination that wait behind a proposal in flight go
// together in the next one (up to maxGroup), as the local writer's group
// commit does: a destination's writes cost one raft commit per group, not
// one each, and what a failover finds decided but not yet durable stays
// about one commit's worth.
type Writer struct {
	c       *Cluster
	audit   func(wal.AuditEntry)
	timeout time.Duration

	mu     sync.Mutex // guards queues and acks
	queues map[string]*destWrites
	acks   map[uint16]*ackQueue
	wg     sync.WaitGroup
}

// ackQueue is one partition's outbox acknowledgements waiting for its
// drain goroutine: they go as one proposal per round, whatever the
// destinations.
type ackQueue struct{ pending []ackRef }

type ackRef struct {
	seq  uint64
	dest string
}

// maxAcks bounds the acknowledgements in one proposal.
const maxAcks = 4096

// destWrites is one destination's writes waiting for its drain goroutine.
type destWrites struct {
	pending []queuedWrite
	idle    chan struct{} // closed when the drain goroutine ends
}

type queuedWrite struct {
	ops  []destsm.Op
	done func(error)
}

// maxGroup bounds the writes of one destination in one proposal.
const maxGroup = 256

// NewWriter returns a writer through c; audit records node-local entries.
func NewWriter(c *Cluster, audit func(wal.AuditEntry)) *Writer {
	return &Writer{c: c, audit: audit, timeout: 10 * time.Second, queues: map[string]*destWrites{}, acks: map[uint16]*ackQueue{}}
}

// Write queues ops for dest behind its earlier writes and returns at once;
// done runs once, on another goroutine, when they are applied or failed.
func (w *Writer) Write(dest string, ops []destsm.Op, done func(error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queues[dest]
	if q == nil {
		q = &destWrites{idle: make(chan struct{})}
		w.queues[dest] = q
		w.wg.Add(1)
		go w.drain(dest, q)
	}
	q.pending = append(q.pending, queuedWrite{ops: ops, done: done})
}

// drain proposes dest's waiting writes, a group at a time, until none is
// left.
func (w *Writer) drain(dest string, q *destWrites) {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		n := min(len(q.pending), maxGroup)
		if n == 0 {
			delete(w.queues, dest)
			close(q.idle)
			w.mu.Unlock()
			return
		}
		group := q.pending[:n:n]
		q.pending = q.pending[n:]
		w.mu.Unlock()
		var ops []destsm.Op
		for _, g := range group {
			ops = append(ops, g.ops...)
		}
		err := w.write(dest, ops)
		for _, g := range group {
			g.done(err)
		}
	}
}

// Wait waits for every write handed to Write so far.
func (w *Writer) Wait() { w.wg.Wait() }

// Settle waits for every write of dest handed to Write so far.
func (w *Writer) Settle(dest string) {
	w.mu.Lock()
	q := w.queues[dest]
	w.mu.Unlock()
	if q != nil {
		<-q.idle
	}
}

// Leased implements actors.Member.
func (w *Writer) Leased(part uint16) bool { return w.c.Leased(part) }

func (w *Writer) write(dest string, ops []destsm.Op) error {
	db := w.c.cfg.DB
	own := db.NewBatch()
	defer own.Discard()
	acks := map[uint16][]ackRef{}
	var audits []wal.AuditEntry
	records := map[uint64]bool{} // events whose delivery record this write puts
	for _, op := range ops {
		if r, ok := op.(destsm.PutDelivery); ok {
			records[r.Seq] = true
		}
	}
	for _, op := range ops {
		if actors.AddDestOp(own, dest, op) {
			if q, ok := op.(destsm.PutQueue); ok && !records[q.Seq] {
				own.PutDelivery(q.Seq, &wal.Delivery{Destination: dest, EventID: wal.EventID(q.Part, q.Seq),
					Status: wal.StatusPending, QSeq: q.QSeq, UpdatedAt: w.c.cfg.Now().UTC()})
			}
			continue
		}
		switch op := op.(type) {
		case destsm.DeleteOutbox:
			own.DeleteInbox(dest, op.Seq)
			acks[op.Part] = append(acks[op.Part], ackRef{seq: op.Seq, dest: dest})
		case destsm.Audit:
			audits = append(audits, wal.AuditEntry{At: op.At, Action: op.Action, ObjectType: "event", ObjectID: op.EventID, ReplayID: op.ReplayID, Detail: op.Detail})
		default:
			return fmt.Errorf("cluster: unknown write op %T", op)
		}
	}
	if own.Count() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		err := w.c.Write(ctx, db.DestPartition(dest), own)
		cancel()
		if err != nil {
			return err
		}
	}
	for p, refs := range acks {
		w.ack(p, refs)
	}
	if w.audit != nil {
		for _, a := range audits {
			w.audit(a)
		}
	}
	return nil
}

// ack hands outbox acknowledgements of part to its drain goroutine. The
// writes they follow are applied already; nothing waits for them.
func (w *Writer) ack(part uint16, refs []ackRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.acks[part]
	if q == nil {
		q = &ackQueue{}
		w.acks[part] = q
		w.wg.Add(1)
		go w.drainAcks(part, q)
	}
	q.pending = append(q.pending, refs...)
}

// drainAcks proposes part's waiting acknowledgements, as many as maxAcks
// at a time, until none is left. A failed one is logged: whoever takes the
// destination over next finds the entry and acknowledges it again.
func (w *Writer) drainAcks(part uint16, q *ackQueue) {
	defer w.wg.Done()
	db := w.c.cfg.DB
	for {
		w.mu.Lock()
		n := min(len(q.pending), maxAcks)
		if n == 0 {
			delete(w.acks, part)
			w.mu.Unlock()
			return
		}
		refs := q.pending[:n:n]
		q.pending = q.pending[n:]
		w.mu.Unlock()
		b := db.NewBatch()
		for _, r := range refs {
			b.DeleteOutbox(part, r.seq, r.dest)
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		if err := w.c.AckOutbox(ctx, part, b); err != nil {
			w.c.log.Warn("outbox acknowledgement failed; the next owner acknowledges again", "partition", part, "entries", n, "err", err)
		}
		cancel()
		b.Discard()
	}
}
