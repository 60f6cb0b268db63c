package wal

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

type pending struct {
	b    *Batch
	done func(error)
}

// Commit hands b to the group committer and returns at once; done runs on
// the committer's goroutine after b is durable (synced) or has failed. done
// must not block for long: the next group waits for it. Callbacks run in
// commit order.
func (db *DB) Commit(b *Batch, done func(error)) {
	if db.closed.Load() {
		b.b.Close()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	select {
	case db.commits <- &pending{b: b, done: done}:
	case <-db.done:
		b.b.Close()
		if done != nil {
			done(ErrClosed)
		}
	}
}

// CommitWait commits b and waits until it is durable.
func (db *DB) CommitWait(b *Batch) error {
	ch := make(chan error, 1)
	db.Commit(b, func(err error) { ch <- err })
	return <-ch
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
		size := first.b.b.Len()
	gather:
		for size < maxBytes {
			select {
			case p := <-db.commits:
				group = append(group, p)
				size += p.b.b.Len()
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
	err   error // set when the group never entered the pipeline
}

func (db *DB) applyGroup(group []*pending) {
	base := group[0].b.b
	var err error
	for _, p := range group[1:] {
		if err = base.Apply(p.b.b, nil); err != nil {
			break
		}
	}
	if err == nil {
		err = db.pdb.ApplyNoSyncWait(base, pebble.Sync)
	}
	db.applied <- appliedGroup{group: group, err: err}
}

func (db *DB) syncLoop() {
	defer db.wg.Done()
	for g := range db.applied {
		err := g.err
		if err == nil {
			err = g.group[0].b.b.SyncWait()
		}
		if err != nil {
			err = fmt.Errorf("wal.Commit: %w", err)
			db.log.Error("group commit failed", "err", err, "batches", len(g.group))
		}
		for _, p := range g.group {
			p.b.b.Close()
			if p.done != nil {
				p.done(err)
			}
		}
	}
}
