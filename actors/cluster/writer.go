package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
)

// Writer makes a destination's writes durable through replication: the
// cluster counterpart of the actors' local writer (same Write signature,
// the same destsm ops). Queue, delivery and dead-letter writes go to the
// destination's partition as one owner write, fenced by this node's
// takeover; outbox deletions go afterwards, as acknowledgements to each
// event's partition; audit entries stay on this node. Writes of one
// destination are applied in the order given; an error (ErrNotOwner when
// this node no longer owns the partition) is the machine's cue to stop.
//
// Not wired yet: the node still spawns destination actors with its local
// writer (see /work/notes/cluster.md, "How layer 3 plugs in").
type Writer struct {
	c       *Cluster
	audit   func(wal.AuditEntry)
	timeout time.Duration

	mu    sync.Mutex               // guards tails
	tails map[string]chan struct{} // per destination: closed when its last write finished
	wg    sync.WaitGroup
}

// NewWriter returns a writer through c; audit records node-local entries.
func NewWriter(c *Cluster, audit func(wal.AuditEntry)) *Writer {
	return &Writer{c: c, audit: audit, timeout: 10 * time.Second, tails: map[string]chan struct{}{}}
}

// Write queues ops for dest behind its earlier writes and returns at once;
// done runs once, on another goroutine, when they are applied or failed.
func (w *Writer) Write(dest string, ops []destsm.Op, done func(error)) {
	w.mu.Lock()
	prev := w.tails[dest]
	mine := make(chan struct{})
	w.tails[dest] = mine
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if prev != nil {
			<-prev
		}
		done(w.write(dest, ops))
		close(mine)
		w.mu.Lock()
		if w.tails[dest] == mine {
			delete(w.tails, dest)
		}
		w.mu.Unlock()
	}()
}

// Wait waits for every write handed to Write so far.
func (w *Writer) Wait() { w.wg.Wait() }

func (w *Writer) write(dest string, ops []destsm.Op) error {
	db := w.c.cfg.DB
	own := db.NewBatch()
	defer own.Discard()
	acks := map[uint16]*wal.Batch{}
	defer func() {
		for _, b := range acks {
			b.Discard()
		}
	}()
	var audits []wal.AuditEntry
	for _, op := range ops {
		if actors.AddDestOp(own, dest, op) {
			continue
		}
		switch op := op.(type) {
		case destsm.DeleteOutbox:
			b := acks[op.Part]
			if b == nil {
				b = db.NewBatch()
				acks[op.Part] = b
			}
			b.DeleteOutbox(op.Part, op.Seq, dest)
		case destsm.Audit:
			audits = append(audits, wal.AuditEntry{At: op.At, Action: op.Action, ObjectType: "event", ObjectID: op.EventID, ReplayID: op.ReplayID, Detail: op.Detail})
		default:
			return fmt.Errorf("cluster: unknown write op %T", op)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	if own.Count() > 0 {
		if err := w.c.Write(ctx, db.DestPartition(dest), own); err != nil {
			return err
		}
	}
	parts := make([]uint16, 0, len(acks))
	for p := range acks {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		if err := w.c.AckOutbox(ctx, p, acks[p]); err != nil {
			return err
		}
	}
	if w.audit != nil {
		for _, a := range audits {
			w.audit(a)
		}
	}
	return nil
}
