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

// commitLoop merges every batch waiting into one Pebble batch and commits
// it with one fsync.
func (db *DB) commitLoop(maxBytes int) {
	defer db.wg.Done()
	group := make([]*pending, 0, 256)
	for {
		var first *pending
		select {
		case first = <-db.commits:
		case <-db.done:
			// Drain what was queued before Close, then stop.
			for {
				select {
				case p := <-db.commits:
					db.commitGroup([]*pending{p})
				default:
					return
				}
			}
		}
		group = append(group[:0], first)
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
		db.commitGroup(group)
	}
}

func (db *DB) commitGroup(group []*pending) {
	base := group[0].b.b
	var err error
	for _, p := range group[1:] {
		if err = base.Apply(p.b.b, nil); err != nil {
			break
		}
	}
	if err == nil {
		err = base.Commit(pebble.Sync)
	}
	if err != nil {
		err = fmt.Errorf("wal.Commit: %w", err)
		db.log.Error("group commit failed", "err", err, "batches", len(group))
	}
	for _, p := range group {
		p.b.b.Close()
		if p.done != nil {
			p.done(err)
		}
	}
}
