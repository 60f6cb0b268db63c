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
// Entries (entry.go) are of three kinds:
//
//   - ingest: a received event, the proposer's dedupe window and nothing
//     else. The state machine decides dedupe at apply time and assigns the
//     event's sequence, so one key yields one event cluster-wide whichever
//     nodes took the copies and whoever led at the time.
//   - takeover: a new owner's first entry, carrying its raft term.
//   - write: an owner's writes (wal.Batch.EncodeOps), stamped with its term.
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
// # What this package must never do
//
// It never writes consensus, election or log replication of its own, never
// places ownership by hashing over live members, and never imports Pebble
// (the store is wal's). A node started without cluster flags never runs
// any of it.
package cluster
