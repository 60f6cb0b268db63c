package actors

import (
	"slices"

	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// A node in a cluster (Config.Member) delivers only what its member owns.
//
// Its store holds a replica of every partition, written by the partitions'
// state machines; the node itself writes there only through Member (a
// destination's queue, delivery and dead-letter keys, fenced by the
// owner's term, and outbox acknowledgements). What changes from a single
// node:
//
//   - Start recovers nothing: a partition's destinations start when the
//     member takes the partition over (Own), each loading its queue, then
//     its inbox in log order, then what the outboxes still hold for it.
//   - The registry spawns a destination's actor only while its partition
//     is owned; Disown stops them. A message for a destination this node
//     does not own is dropped: it is on disk, and its owner takes it from
//     there.
//   - Events reach the owner's actors from the partitions' apply
//     (EventApplied for destinations fed from the outbox, InboxApplied, in
//     log order, for ordered ones), and orphans (an ordered destination's
//     outbox entry whose inbox entry never came) from the sweep loop
//     (orphans.go).
//   - An attempt starts only while Member.Leased holds; otherwise it waits
//     (parked in the actor) for the lease or for the actor to be stopped.
//     So a node that was stopped past an election and continues sends
//     nothing new as the owner of what another node owns now.

// QueueWriter makes a destination's writes durable, in the order given.
// done runs once, on any goroutine, and must not block.
type QueueWriter interface {
	Write(dest string, ops []destsm.Op, done func(error))
}

// Member is what a cluster member gives its node.
type Member interface {
	QueueWriter
	// Leased reports whether this node owns part and may start a delivery
	// for one of its destinations now.
	Leased(part uint16) bool
	// Settle waits until every write handed over for dest so far has
	// finished, so a restarting actor reads what its predecessor wrote.
	Settle(dest string)
}

// UseMember makes the node write through m (a cluster member's replicated
// writer). It is called once, before Own; the node must have been started
// with Config.Member.
func (n *Node) UseMember(m Member) {
	n.member = m
	n.writer = m
}

// Own starts delivering for partition part: its destinations' actors may
// run, and those with work waiting are woken now.
func (n *Node) Own(part uint16) {
	n.dests.own(part, true)
	dests, err := n.db.DestsWithWork(part)
	if err != nil {
		n.log.Error("taking over a partition: reading its destinations failed", "partition", part, "err", err)
		return
	}
	for _, d := range dests {
		n.dests.send(d, wakeMsg{})
	}
}

// Disown stops delivering for partition part: its destinations' actors
// stop (an attempt in flight finishes; its outcome write is fenced).
func (n *Node) Disown(part uint16) { n.dests.own(part, false) }

// EventApplied hands a replicated event to the local owners of its
// destinations, except those in inboxed: they take it from their inbox.
func (n *Node) EventApplied(ev *wal.Event, inboxed []string) {
	for _, d := range ev.Destinations {
		if !slices.Contains(inboxed, d) {
			n.dests.send(d, &enqueueMsg{ev: ev, fromOutbox: true})
		}
	}
}

// InboxApplied hands event (part, seq) to dest's local owner, in the
// order dest's partition applied it.
func (n *Node) InboxApplied(dest string, part uint16, seq uint64) {
	n.dests.send(dest, &enqueueMsg{part: part, seq: seq, fromOutbox: true})
}

// Delivers reports whether this node delivers dest: always on a single
// node; on a cluster member while it owns dest's partition.
func (n *Node) Delivers(dest string) bool { return n.member == nil || n.dests.owns(dest) }

// Ordered reports whether dest keeps order (events of a cluster member's
// ingest get an inbox entry for it before their 2xx).
func (n *Node) Ordered(dest string) bool {
	d, ok := n.Snapshot().Destinations[dest]
	return ok && d.WithDefaults().Ordering == model.OrderingOrdered
}
