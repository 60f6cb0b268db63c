package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/webhookops/webhookops/actors"
)

// inboxProposer commits the inbox entries of concurrent ingests, grouped
// per destination partition: at most one proposal in flight per partition,
// carrying every reference that waited behind the one before (up to
// maxInboxRefs), so the goroutines it runs are at most the partitions
// however many ingests wait, and an ordered ingest costs its inbox
// partition a share of one raft entry rather than one each.
//
// Grouping keeps the order the inbox promises: an ingest's references are
// committed before its sender hears 2xx, so a later sender's join a later
// proposal; references of ingests that wait together are concurrent, with
// no order between them.
type inboxProposer struct {
	c *Cluster

	mu    sync.Mutex // guards the fields below
	parts map[uint16]*inboxQueue
	shut  bool
	wg    sync.WaitGroup
	// drains and peak count the drain goroutines running now and at most
	// (tests).
	drains, peak int
	proposals    int
	dropped      int // waits whose callers were gone before their proposal
}

// inboxQueue is one partition's references waiting for its drain
// goroutine.
type inboxQueue struct{ pending []inboxWait }

type inboxWait struct {
	refs []inboxRef
	done chan error // buffered: the drain never waits on a caller
	// gone is closed once the caller stopped waiting (its request ended
	// without a 2xx): its references are dropped, not proposed. Its
	// event is committed without an answer, so no order was promised for
	// it; the orphan sweep takes it (actors/orphans.go).
	gone <-chan struct{}
}

// nextGroup takes from pending the next proposal's waits, up to
// maxInboxRefs references (at least one wait), skipping those whose
// callers are gone. It returns the group, what stays pending, and how
// many waits it dropped. A pure decision on the queue.
func nextGroup(pending []inboxWait) (group, rest []inboxWait, dropped int) {
	refs := 0
	for i, w := range pending {
		select {
		case <-w.gone:
			dropped++
			continue
		default:
		}
		if len(group) > 0 && refs+len(w.refs) > maxInboxRefs {
			return group, pending[i:], dropped
		}
		group = append(group, w)
		refs += len(w.refs)
	}
	return group, nil, dropped
}

func newInboxProposer(c *Cluster) *inboxProposer {
	return &inboxProposer{c: c, parts: map[uint16]*inboxQueue{}}
}

// propose commits refs to the inboxes of their destinations' partitions
// and returns when every partition has (or one failed, or ctx ended).
func (ip *inboxProposer) propose(ctx context.Context, refs []inboxRef) error {
	byPart := map[uint16][]inboxRef{}
	for _, r := range refs {
		p := ip.c.cfg.DB.DestPartition(r.dest)
		byPart[p] = append(byPart[p], r)
	}
	waits := make([]chan error, 0, len(byPart))
	for p, rs := range byPart {
		done := make(chan error, 1)
		if err := ip.add(p, inboxWait{refs: rs, done: done, gone: ctx.Done()}); err != nil {
			return err
		}
		waits = append(waits, done)
	}
	var first error
	for _, done := range waits {
		select {
		case err := <-done:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			// A proposal already made goes on (the inbox takes each
			// reference once); one not made yet drops these (nextGroup).
			return fmt.Errorf("%w: %v", actors.ErrUnavailable, ctx.Err())
		}
	}
	return first
}

// add queues w for partition p, starting p's drain goroutine if none runs.
func (ip *inboxProposer) add(p uint16, w inboxWait) error {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	if ip.shut {
		return fmt.Errorf("%w: leaving the cluster", actors.ErrUnavailable)
	}
	q := ip.parts[p]
	if q == nil {
		q = &inboxQueue{}
		ip.parts[p] = q
		ip.drains++
		ip.peak = max(ip.peak, ip.drains)
		ip.wg.Add(1)
		go ip.drain(p, q)
	}
	q.pending = append(q.pending, w)
	return nil
}

// drain proposes p's waiting references, as many as maxInboxRefs in one
// entry, until none is left.
func (ip *inboxProposer) drain(p uint16, q *inboxQueue) {
	defer ip.wg.Done()
	for {
		ip.mu.Lock()
		group, rest, dropped := nextGroup(q.pending)
		q.pending = rest
		ip.dropped += dropped
		if len(group) == 0 {
			delete(ip.parts, p)
			ip.drains--
			ip.mu.Unlock()
			return
		}
		ip.proposals++
		ip.mu.Unlock()
		var all []inboxRef
		for _, w := range group {
			all = append(all, w.refs...)
		}
		res, err := ip.c.propose(context.Background(), p, encodeInbox(all))
		if err == nil && res.Value != ResultAccepted {
			err = fmt.Errorf("%w: partition %d refused an inbox entry (result %d)", actors.ErrUnavailable, p, res.Value)
		}
		for _, w := range group {
			w.done <- err
		}
	}
}

// close refuses new references and waits for the drains (their proposals
// end as the cluster closes).
func (ip *inboxProposer) close() {
	ip.mu.Lock()
	ip.shut = true
	ip.mu.Unlock()
	ip.wg.Wait()
}
