// Package actors owns the moving parts of a node, as protoactor-go actors
// over one wal store: ingress shards, destination actors, their
// supervision, and replays. Subpackage agentreg is the agents' side of the
// tunnel (not an actor: an adapter between tunnelproto and the node's
// configuration); subpackage delivery makes one HTTP attempt.
//
// # Ingest
//
// An ingress shard actor owns the partitions p with p % shards == index.
// hash(source, idempotency key) picks the partition, so one key always
// meets the same shard while a hot source spreads over all of them. The
// shard caches recent keys (and every key still committing) in memory and
// looks older ones up in Pebble, which is authoritative because the shard
// is its keys' only writer; Pebble's bloom filters keep a lookup of a key
// never seen cheap, and memory stays bounded whatever the dedupe window.
// For a new key it builds one
// batch (event, dedupe key, one outbox entry per destination, the
// "event.received" audit entry) and hands it to the wal's group committer
// without waiting: many events share one fsync. The commit callback runs in
// commit order; it hands the event to each destination actor's mailbox and
// only then answers the sender, so a request that arrives after an answer
// can never overtake it. A duplicate of a key whose first event is still
// committing waits for that commit and answers with its outcome.
//
// # Delivery
//
// One destination actor per destination is the only writer of its queue
// and retry state. Its decisions are a pure state machine
// (internal/destsm): the actor feeds it messages and the time and performs
// what it answers (write these keys, read this page of the queue, start
// this attempt, arm this timer), and decides nothing itself. Writes go
// through a narrow queueWriter: locally one batch in the wal's group
// commit; the cluster can route the same writes through replication.
//
// The machine appends an event to the queue (acknowledging the outbox
// entry in the same write), keeps a window of the queue in memory and has
// the rest paged in by queue sequence, the same order the live path used.
// Attempts run on goroutines and report back as messages (parallel ones,
// like the shards' and destinations' mailbox turns, on the node's kept
// workers, dispatch.go: a goroutine per turn grew a fresh stack every
// time); timers come from
// the injected Clock and arrive as messages; the due time of a retry is
// stored, so a restart resumes the schedule. In ordered mode one event is
// on the wire at a time: the machine hands the next ones over ahead,
// chained, to the destination's attemptLine (one goroutine), which starts
// each only once the one before got its 2xx and skips it otherwise, so
// the next request follows a 2xx without a hop through the actor. At most
// destsm.MaxChained (16) wait on the line, and a configuration change
// recalls those not started. Each outcome (delivered or dead-lettered)
// joins a later group commit while the next events go; the events handed
// to the line and the outcomes not yet durable are together at most
// OrderedPipeline (256: at a few thousand deliveries a second the group
// commits of a busy disk take tens of milliseconds, and a smaller window
// stalls the line on them), so a crash re-sends at most that many
// events, oldest first, before going on in order. In parallel mode up to max_in_flight attempts run at once, each
// on a goroutine of its own while it runs. After five consecutive failed
// attempts the circuit opens: one attempt at a time probes until one
// succeeds. An optional rate limit spaces attempt starts.
//
// # Failure and restart
//
// A write that fails stops the machine, and the actor fails with it: an
// ordered destination never goes on as if an outcome were durable when it
// is not.
// Its supervisor restarts it (with backoff), and a restart starts from
// disk: it waits until nothing the failed incarnation handed to the
// committer can still land (wal.WaitCommitted), counts the queue again,
// and takes what the outbox still holds for it, oldest first, before any
// message in its mailbox. The message being handled when an actor fails
// is lost with it; its event is still in the outbox, so it is delivered,
// and in order. The mailbox message that carried an entry taken this way
// is dropped when it arrives. Attempt results, commit outcomes and timers
// of the failed incarnation are dropped too (each carries its
// incarnation).
//
// # Counters
//
// Each destination's queue depth and dead-letter count live in a gauge the
// node counts once at start (wal.CountByDestination) and the destination's
// machine keeps from then on, moving it only when the write that changes
// the disk is durable; retention tells the actor what it expired. /metrics
// reads the gauges, so a scrape costs the same whatever the backlog.
//
// An idle destination actor passivates (its gauge stays). The registry
// counts what it routes to each actor; the actor may stop only when it has
// received all of it, checked under the registry's lock, so no message is
// lost to a stopping actor.
//
// # Recovery
//
// Start wakes every destination whose queue is not empty and re-sends what
// is left in the outbox, oldest event first, before the node is ready. The
// sweeps (settled dedupe keys every minute; every hour, retention of events,
// of refusal rows (RefusalRetention, 7 days) and of the audit log) run on
// the node's Clock.
//
// # Replays
//
// A replay is engine work (replay.go): StartReplay records it with its
// replay.requested audit entry, a scan goroutine collects its events
// (oldest first) and hands each (event, destination) pair to the replay
// coordinator, an actor that owns the tallies. The coordinator records a
// pair as outstanding before it enqueues it, and destinations report a
// finished replayed delivery to it as a message; a delivery that several
// replays rode on (an event still pending when replayed) finishes the
// pair for all of them, and Apply tells it of deleted destinations, whose
// pairs finish as failed. Nothing polls delivery records. One replay keeps
// at most 50,000 pairs outstanding before its scan waits, so a replay of
// millions does not flood the destination mailboxes.
//
// # What this package must never do
//
// It never answers a sender before the event is durable, never delivers
// from anywhere but the destination's own actor, and never blocks an actor
// on the network: HTTP runs on goroutines that report back.
package actors
