package wal

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// pending is one Commit waiting for the committer. b is nil for a
// WaitCommitted marker, which writes nothing.
type pending struct {
	b        *Batch
	done     func(error)
	answered atomic.Bool
}

// answer runs done once: after a write failure both the sync loop and
// answerQueued may try.
func (p *pending) answer(err error) {
	if p.done != nil && p.answered.CompareAndSwap(false, true) {
		p.done(err)
	}
}

func (p *pending) len() int {
	if p.b == nil {
		return 0
	}
	return p.b.b.Len() + len(p.b.audit)
}

func (p *pending) close() {
	if p.b != nil {
		p.b.b.Close()
	}
}

// Commit hands b to the group committer and returns at once; done runs on
// the committer's goroutine after b is durable (synced) or has failed. done
// must not block for long (the next group waits for it) and must not call
// Commit. Callbacks run in commit order. After Close, done runs at once
// with ErrClosed; after a write failure (see Accepting), with ErrStopped.
func (db *DB) Commit(b *Batch, done func(error)) {
	p := &pending{b: b, done: done}
	if st := db.stopped.Load(); st != nil {
		p.close()
		if done != nil {
			done(st.err)
		}
		return
	}
	if !db.enqueue(p) {
		p.close()
		if done != nil {
			done(ErrClosed)
		}
	}
}

// enqueue hands p to the committer, false once the store is closed. It
// holds closeMu shared, so Close cannot stop the committer between the
// check and the send: a Commit is either refused or committed, never lost.
func (db *DB) enqueue(p *pending) bool {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return false
	}
	db.commits <- p
	return true
}

// CommitWait commits b and waits until it is durable.
func (db *DB) CommitWait(b *Batch) error {
	ch := make(chan error, 1)
	db.Commit(b, func(err error) { ch <- err })
	return <-ch
}

// WaitCommitted returns once every batch handed to Commit before the call
// has been committed or has failed, and its callback has run. A writer that
// restarts after a failed commit calls it before reading its state back, so
// no write of its earlier life lands after the read. It returns ErrClosed
// once the store is closed.
func (db *DB) WaitCommitted() error {
	ch := make(chan struct{})
	if !db.enqueue(&pending{done: func(error) { close(ch) }}) {
		return ErrClosed
	}
	<-ch
	return nil
}

// SetCommitFault makes group commits fail, for tests of what a writer does
// when storage fails (Pebble itself treats a failed WAL write as fatal, so
// a failing file system cannot show it). Before each group reaches Pebble
// the committer calls f; an error fails the whole group, writing none of
// it, and every callback in the group sees it, in commit order. nil clears
// the fault.
func (db *DB) SetCommitFault(f func() error) {
	if f == nil {
		db.fault.Store(nil)
		return
	}
	db.fault.Store(&f)
}

// commitLoop merges every batch waiting into one Pebble batch and enters
// it into Pebble's commit pipeline without waiting for the fsync; syncLoop
// waits for the fsyncs in the same order and runs the callbacks. So one
// group is being gathered and applied while the one before it syncs, and
// callbacks still run in commit order.
func (db *DB) commitLoop(maxBytes int) {
	defer db.wg.Done()
	defer close(db.applied)
	for {
		var first *pending
		select {
		case first = <-db.commits:
		case <-db.done:
			// Commit what was queued before Close, then stop.
			for {
				select {
				case p := <-db.commits:
					db.applyGroup([]*pending{p})
				default:
					return
				}
			}
		}
		group := make([]*pending, 1, 64)
		group[0] = first
		size := first.len()
	gather:
		for size < maxBytes {
			select {
			case p := <-db.commits:
				group = append(group, p)
				size += p.len()
			default:
				break gather
			}
		}
		db.applyGroup(group)
	}
}

// appliedGroup is a group in Pebble's pipeline, waiting for its fsync.
type appliedGroup struct {
	group []*pending
	// base is the batch that entered Pebble: the group's only batch, or
	// merged, a batch of the group's whole size that the others were
	// copied into (the committer's own, closed after the fsync). nil when
	// the group holds only WaitCommitted markers or never entered.
	base   *pebble.Batch
	merged bool
	err    error // set when the group never entered the pipeline
}

func (db *DB) applyGroup(group []*pending) {
	g := appliedGroup{group: group}
	if f := db.fault.Load(); f != nil {
		g.err = (*f)()
	}
	if g.err == nil {
		db.applying.Store(&group)
		g.err = db.apply(&g)
		db.applying.Store(nil)
	}
	db.applied <- g
}

// apply merges a group into its base batch and enters it into Pebble's
// commit pipeline. An error from Pebble stops the store, and after that it
// touches Pebble no more; a Pebble panic stops the store instead of the
// process (see walWatchFS for the panics it cannot catch).
func (db *DB) apply(g *appliedGroup) (err error) {
	batches := make([]*Batch, 0, len(g.group))
	size := 0
	for _, p := range g.group {
		if p.b != nil {
			batches = append(batches, p.b)
			size += p.b.b.Len() + len(p.b.audit)
		}
	}
	if len(batches) == 0 {
		return nil
	}
	if st := db.stopped.Load(); st != nil {
		return st.err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: %v", r)
			db.fail(err, true)
		}
	}()
	base := batches[0].b
	if len(batches) > 1 {
		// One allocation of the group's size, not a merge into the first
		// batch that grows it again and again.
		base = db.pdb.NewBatchWithSize(size + 2*auditBlockOverhead)
		g.merged = true
		for _, b := range batches {
			if err := base.Apply(b.b, nil); err != nil {
				base.Close()
				g.merged = false
				db.fail(err, false)
				return err
			}
		}
	}
	g.base = base
	db.flushAudit(base, batches)
	if err := db.pdb.ApplyNoSyncWait(base, pebble.Sync); err != nil {
		db.fail(err, false)
		return err
	}
	return nil
}

// syncWait waits for b's fsync, or answers ErrStopped once the store has
// stopped (the fsync may never finish: see walWatchFS).
func (db *DB) syncWait(b *pebble.Batch) error {
	if st := db.stopped.Load(); st != nil {
		return st.err
	}
	ch := make(chan error, 1)
	go func() { ch <- b.SyncWait() }()
	select {
	case err := <-ch:
		return err
	case <-db.stoppedCh:
		return db.stopped.Load().err
	}
}

func (db *DB) syncLoop() {
	defer db.wg.Done()
	for g := range db.applied {
		err := g.err
		if base := g.base; err == nil && base != nil {
			if err = db.syncWait(base); err != nil && !errors.Is(err, ErrStopped) {
				db.fail(err, false)
			}
		}
		stopped := db.stopped.Load() != nil
		if err != nil {
			err = fmt.Errorf("wal.Commit: %w", err)
			if !stopped {
				// An injected fault (SetCommitFault); a real failure has
				// stopped the store and said so once.
				db.log.Error("group commit failed", "err", err, "batches", len(g.group))
			}
		}
		if g.merged && !stopped {
			g.base.Close()
		}
		for _, p := range g.group {
			if !stopped {
				p.close() // back to Pebble's pool; not while Pebble may hold it
			}
			p.answer(err)
		}
	}
}
