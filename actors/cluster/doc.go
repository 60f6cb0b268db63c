// Package cluster runs WebhookOps partitions as raft shards on dragonboat
// v4: replicated ingest, the partition state machine, and ownership fenced
// by raft terms.
//
// # Partitions
//
// Each wal partition is one raft shard (shard id PartitionShard(p)) with a
// replica on every member. Its state machine (partitionSM, an on-disk
// state machine) applies committed entries to the partition's key range
// through wal.ReplicaBatch, with the applied index in the same Pebble
// batch and no fsync of its own: the raft log is the durability. Snapshots
// stream the partition's key range (applied index and fence included), so
// a replica that fell behind or a replaced node catches up whole.
//
// Entries (entry.go) are of these kinds:
//
//   - ingest: a received event, the proposer's dedupe window and which of
//     its destinations the proposer sends inbox entries (the ordered
//     ones). The state machine decides dedupe at apply time and assigns
//     the event's sequence, so one key yields one event cluster-wide
//     whichever nodes took the copies and whoever led at the time. It
//     writes the event, its dedupe key and an outbox entry per
//     destination.
//   - inbox: events for ordered destinations of this partition (see
//     Order below); one already waiting or already taken is not added
//     again.
//   - takeover: a new owner's first entry, carrying its raft term.
//   - write: an owner's writes (wal.Batch.EncodeOps), stamped with its term.
//   - ack: a destination owner's outbox deletions in an event's partition.
//
// # Delivery
//
// A member's node (actors.Node with Config.Member) runs a destination's
// actor only while this member owns the destination's partition: the
// ownership loop tells it (Engine.Own, Disown) and the partitions' apply
// hands it what they applied (Engine.EventApplied, InboxApplied). Every
// member holds a replica of every partition, so the owner of a
// destination sees every event for it applied in its own store; nothing
// is sent between nodes. The owner's writes go through Writer (fenced
// into the destination's partition, grouped per destination like the
// local group commit), which marks an event taken into the queue with a
// pending delivery record, so an acknowledgement lost with a node does
// not queue the event twice.
//
// # Order
//
// An ordered destination's order is its partition's log order. Ingest
// commits the event in the event's partition, then an inbox entry in
// every ordered destination's partition, and only then answers 2xx; the
// owner takes inbox entries in the order the destination's partition
// applied them. So if A's 2xx went out before B was sent, A's inbox entry
// precedes B's in one log, whichever nodes took them and however far a
// replica of A's partition lags (the owner waits for the event itself to
// be applied locally). Parallel destinations are fed from the outbox as
// events apply, with no order to keep. A takeover loads the queue, then
// the inbox in log order, then whatever the outboxes still hold for the
// destination, oldest first (events committed whose sender never heard
// 2xx; no order was promised for them). Between takeovers the owner's
// node looks for such orphans every minute: an ordered destination's
// outbox entry seen at two sweeps with no inbox entry is appended to the
// queue then (actors/orphans.go), so an orphan waits a minute or two, not
// for the next failover.
// The two sweeps do not prove that no inbox entry is on its way (a sender
// may still be waiting for it); taking such an event early keeps the
// order anyway (orphanAfter in actors/orphans.go says why).
//
// # Ownership = leadership, fenced
//
// dragonboat forwards a proposal from any replica, so a leader that has
// been deposed without noticing could still get writes committed. The
// state machine sees no terms (an entry is an index and bytes), so an
// owner proposes a takeover entry with the term it read from GetLeaderID,
// and Fence.Admit (a pure function) refuses any takeover or write stamped
// lower. Refusals are result values, never errors: an error from Update is
// fatal by design.
//
// # Leases
//
// Fencing keeps a deposed owner's writes out; it cannot unsend an HTTP
// request. So a member starts a delivery only while it holds the
// partition's lease (Leased): its leadership confirmed by a ReadIndex (a
// quorum answered a heartbeat of its term) less than four fifths of an
// election timeout ago. With CheckQuorum no follower that answered votes
// for anyone else within an election timeout, so no other member can have
// taken the partition over meanwhile. A member stopped past an election
// (SIGSTOP) finds its lease expired by the monotonic clock when it runs
// again and starts nothing until the ownership loop has caught up; the
// attempts it had in flight are the ones a failover may send twice.
//
// # Redeliveries at a failover
//
// An outcome (delivered, dead-lettered) is durable once the destination's
// partition has committed the owner write that carries it. An ordered
// destination pipelines its outcomes as a single node does
// (actors.Config.OrderedPipeline, serve --ordered-pipeline, default 256):
// event N+1 goes as soon as N's 2xx is in, while N's outcome waits for the
// Writer's next proposal for the destination, grouped with the others that
// arrived meanwhile. The events handed to the sending line or sent whose
// outcome is not committed are at most the pipeline together; a new owner
// finds them pending in the queue and sends them again, oldest first, with
// the same webhook-id, then goes on in order, so the first arrival of
// every event keeps the order. A failover therefore re-sends at most the
// pipeline's events of an ordered destination (1 if a member runs with
// --ordered-pipeline 1, at about one raft commit per delivery), and at
// most max_in_flight of a parallel one, whose attempts keep their place
// until their outcome is committed (destsm.Params.DurableSlots).
//
// # Metadata shard
//
// Configuration (sources, destinations, agents, forwards) and admin
// tokens are one more raft shard (MetaShard), with a replica on every
// member. The node proposes every configuration change there
// (actors.Node.Apply on a member: validated and completed first, with
// the secrets it generates chosen by the proposer) and answers once this
// member applied it. Its state machine (metaSM, on-disk) hands each
// committed change to the node (actors.Node.ApplyCommitted), which
// validates it again against the configuration applied so far (equal on
// every member, so every member decides the same) and writes it under
// the keys a single node uses (c <kind> <slug>), with the shard's applied
// index in the same Pebble batch; then the node's destinations, the
// tunnel's registry and the admin API's tokens pick it up. A refusal is a
// result value carrying the usual error kind (not found, conflict, a
// field), never an error from Update. Snapshots hold every replicated
// object, secrets opened from the member's store and the whole sealed
// with the cluster key; a member restores them sealing with its own store
// key, and reloads its configuration.
//
// A proposal retried after a try that timed out may commit twice (the
// first copy was only slow); the state machine records each applied
// entry's result under a hash of its bytes, unique per proposal, and
// answers a second copy with it, applying nothing (meta.go, Retried
// proposals): a create is not refused as a conflict with itself, and an
// update never undoes a change committed between its two copies.
//
// Entries are sealed whole with the cluster sealing key (seal.go): kind,
// version and key id in clear as associated data, then AES-GCM over the
// change's JSON. A malformed or tampered entry is ResultBad and applies
// nothing. One sealed with another key makes this member stop applying
// (nothing more is recorded, so a restart with the right key applies it)
// and tells serve to stop; a member whose store recorded another key id
// refuses to start.
//
// # Membership
//
// Members are replicas of every partition, of the metadata shard and of
// the tunnel directory. AddNode and RemoveNode make one raft membership
// change per shard (retried, and idempotent, so a retry after a partial
// failure finishes the job); a replacement takes a new id and starts with
// Config.Join, catching up from the log or a snapshot. The metadata shard
// records the members too (members.go: the initial ones at the first
// start, then each add and removal once every shard made it), so any
// member lists them from its own store; each member adds its own admin
// URL to its record (adminurl.go), where the others find it to forward a
// replay. Removal first, then
// the addition: a partition never waits for
// a member that has nothing yet to make its quorum.
//
// # Tunnel directory
//
// Agents keep a session to every member (agentd joins them all), and a
// destination's owner delivers through its own session. What each
// member's tunnel is and holds lives in a small shard of its own,
// TunnelShard (tunnels.go): each member proposes its whole tunnel state
// (address, pin, agents in session, forwards listening or failing) on
// start and on every change, and applying replaces that member's record.
// It is volatile and small, so its state machine is in memory and
// snapshots whole. Enrollment reads it to name every member's tunnel; the
// admin API reads it to show an agent's session and a forward's listener
// on each member.
//
// # What this package must never do
//
// It never writes consensus, election or log replication of its own, never
// places ownership by hashing over live members, and never imports Pebble
// (the store is wal's). A node started without cluster flags never runs
// any of it.
package cluster
