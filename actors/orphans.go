package actors

import (
	"time"

	"github.com/webhookops/webhookops/wal"
)

// Orphans (cluster members only). A member's ingest commits the event
// (with an outbox entry per destination), then an inbox entry in each
// ordered destination's partition, then answers 2xx. An ingest that died
// between the two left an event whose ordered destinations take it only
// from the outbox, which the owner reads at a takeover: without one the
// event would wait for the next failover. Its sender never heard 2xx, so
// no order was promised for it; if the sender retries, the duplicate's
// ingest proposes the inbox entry again and the event goes the usual way.
//
// So the sweep loop of a member looks, every sweepEvery, at the outbox
// entries of the ordered destinations this member delivers: one that was
// there at the last sweep too (orphanAfter before or more) and has no
// inbox entry is handed to its destination, which takes it as a takeover
// would: appended after what its inbox held, or acknowledged if its queue
// has it already.

// orphanAfter is how long an ordered destination's outbox entry must have
// been seen without its inbox entry to count as an orphan: past an
// ingest's two proposals (5 s each at most, retries included), so a slow
// ingest is rarely overtaken. It is not a bound: an ingest's inbox
// reference can wait longer behind others in its partition's drain
// (actors/cluster inbox.go) while its sender still waits (up to the
// request's own deadline, 60 s on HTTP/1.1) and then hears 2xx. Taking
// such an event early keeps order all the same: every event acknowledged
// before it was sent had its inbox entry applied before this event was
// even committed, so its message is ahead of the orphan's in the actor's
// mailbox; events sent after its 2xx come after the take; and its own
// late inbox entry is refused (the take's delivery record) or, racing the
// take, dropped by the machine (taken twice) and acknowledged again.
const orphanAfter = 30 * time.Second

type orphanKey struct {
	dest string
	part uint16
	seq  uint64
}

// orphanMsg asks a destination's actor to take event (part, seq) from
// the outbox if nothing else has.
type orphanMsg struct {
	part uint16
	seq  uint64
}

func (orphanMsg) isRouted() {}

// sweepOrphans hands the orphans among the outbox entries of the ordered
// destinations this member delivers to their actors. seen holds when each
// entry was first seen (by the node's clock) by earlier sweeps; the
// entries seen now are returned for the next one. Runs on the sweep loop.
func (n *Node) sweepOrphans(seen map[orphanKey]time.Time) map[orphanKey]time.Time {
	now := n.clock.Now()
	next := make(map[orphanKey]time.Time, len(seen))
	mine := map[string]bool{} // destination -> delivered here and ordered
	for p := 0; p < n.db.Partitions(); p++ {
		err := n.db.ScanOutbox(uint16(p), func(e wal.OutboxEntry) {
			ok, known := mine[e.Dest]
			if !known {
				ok = n.dests.owns(e.Dest) && n.Ordered(e.Dest)
				mine[e.Dest] = ok
			}
			if !ok {
				return
			}
			k := orphanKey{dest: e.Dest, part: e.EventPart, seq: e.EventSeq}
			first, was := seen[k]
			if !was {
				first = now
			}
			next[k] = first
		})
		if err != nil {
			n.log.Error("looking for orphaned events: reading an outbox failed", "partition", p, "err", err)
			return seen
		}
	}
	for k, first := range next {
		if now.Sub(first) < orphanAfter {
			continue
		}
		if held, err := n.db.InboxHolds(k.dest, k.seq); err != nil || held {
			continue // on its way through the inbox
		}
		n.dests.send(k.dest, orphanMsg{part: k.part, seq: k.seq})
	}
	return next
}

// takeOrphan takes event (part, seq) from the outbox unless its inbox
// entry arrived meanwhile: appended to the queue (the machine drops it if
// it took the event already), or acknowledged if the queue has it.
func (d *destination) takeOrphan(m orphanMsg) {
	held, err := d.n.db.InboxHolds(d.slug, m.seq)
	if err != nil || held {
		return
	}
	d.take(m.part, m.seq)
}
