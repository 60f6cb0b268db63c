// Package wal owns every byte WebhookOps keeps on disk. It is the only
// package that imports Pebble.
//
// # Key schema
//
// All durable state that grows with traffic lives in a partition: a
// contiguous key range that can be copied, checkpointed or handed to
// another node whole. The partition count is fixed when a data dir is
// created and stored under the meta prefix; a node owns partitions, and a
// single node owns them all.
//
//	m <name>                               meta (partition count, format version)
//	c <kind> <slug>                        config objects (sources, destinations, agents,
//	                                       forwards, tokens), JSON, secrets sealed with AES-GCM
//	                                       bound to their record and field (seal.go): source
//	                                       secrets, signing secrets, agent secrets, destination
//	                                       credential headers and URL query
//	u <first seq:8>                        audit entries of one group commit, in the order
//	                                       they happened (audit.go; a JSON value is one entry
//	                                       written before blocks)
//	p <part:2> e <seq:8>                   event: raw headers and body as received
//	p <part:2> k <source> 0 <idem key>     dedupe key -> event seq and receive time
//	p <part:2> o <seq:8> <dest>            outbox: event not yet appended to dest's queue
//	p <part:2> q <dest> 0 <qseq:8>         queue: a pending delivery, in acknowledgement order
//	p <part:2> r <dest> 0 <seq:8>          delivery record: status and every attempt (binary,
//	                                       records.go; a JSON value was written before)
//	p <part:2> x <dest> 0 <seq:8>          dead-letter index
//	p <part:2> w <dest> 0 <seq:8>          pending index: dest's queue by event sequence (index.go)
//	p <part:2> n <seq:8>                   event routed to no destination (index.go)
//	p <part:2> i <dest> 0 <seq:8>          inbox (cluster): an ordered destination's event, in raft order (inbox.go)
//	p <part:2> z a | z f                   replication state (cluster): applied raft index, fence (replica.go)
//	c m <id>                               a cluster's member record (metadata shard): raft address, admin URL
//	c p <entry id>                         a recent metadata shard entry's result (a retried proposal applies once)
//	m M                                    the cluster member this store belongs to, if any
//	m R a | m R k                          metadata shard (cluster): applied raft index, id of
//	                                       the cluster sealing key (metashard.go); the shard
//	                                       writes c s|d|a|f|t|m|p on a member
//	m I                                    the indexes are complete (built once on open)
//
// An event's keys (e, k, o, n) live in the partition of hash(source, idem
// key); a destination's keys (q, r, x, w, i) live in the partition of
// hash(destination).
// The queue is ordered by a per-destination sequence assigned by the
// destination's actor, the only writer of that queue, so paging the queue
// in from disk sees the same order the live path used.
//
// # Durability
//
// Every write goes through the Committer: one goroutine that merges every
// batch waiting for it into one Pebble batch and commits it with a real
// fsync. Throughput comes from many events sharing one fsync, never from
// skipping it. A callback runs only after its batch is durable, or with
// the error that failed its whole group (nothing of a failed group is
// written); callbacks run in commit order either way. WaitCommitted lets a
// writer that restarts after a failure wait until nothing it handed over
// earlier can still land. SetCommitFault injects such failures in tests:
// Pebble treats a failed WAL write as fatal, so a faulty file system cannot.
//
// # Dedupe lookups
//
// GetDedupeAfter answers most lookups of a key never seen from an
// in-memory filter of the dedupe keys on disk (bloom filters per
// partition, filled by every write of a dedupe key and by a scan at Open,
// holding about one dedupe window of keys, bounded by
// Config.DedupeFilterBytes); a "maybe" reads Pebble, which stays
// authoritative. See dedupe.go.
//
// # Reads and closing
//
// Pebble panics when used after Close, so every read holds closeMu shared
// (for the life of an iterator) and a read after Close answers ErrClosed.
// A reader never takes closeMu twice: a Close waiting for it would block
// the second hold.
//
// # Indexes and event queries
//
// The event list reads candidates from an index when its filter allows
// (a status, a destination, an idempotency key) and decides on each with
// the caller's match, so an index narrows a list and never changes it.
// Each index is written in the batch that changes what it lists; the
// pending index is the only one ingest and delivery did not already write
// (index.go, query.go).
//
// # Retention
//
// ExpireEvents deletes finished events older than a cutoff with their
// dedupe keys (only if still theirs), delivery records, dead-letter and
// no-destination entries, in one batch; an event still pending anywhere is
// kept (and so are its pending index entries).
//
// ExpireAudit deletes audit entries older than its cutoff from the oldest
// block up. Refusal rows (NewRefusalBatch: tallies of refused requests,
// which strangers cause) have a shorter retention of their own: a group
// commit writes them in a block apart from every other entry and lists
// that block under prefixRefusals, so ExpireRefusals reads only those
// blocks and deletes them, leaving the rest of the audit log, whose
// sequences they share, in place.
//
// # Disk space and write failures
//
// A free-space floor (Config.MinFreeBytes, read by statfs every second),
// a ballast file given back on the first ENOSPC, writes that wait for room
// when no ballast is left, and a stopped state for any WAL write error
// that still reaches Pebble (which cannot survive one): see space.go.
// Accepting is what ingest and /readyz ask; it costs two atomic loads.
//
// # What this package must never do
//
// It never decides anything about delivery, dedupe or ordering; it stores
// what the actors decided and gives it back in key order. It never returns a
// secret in clear except through the explicit Open* calls, and never logs one.
package wal
