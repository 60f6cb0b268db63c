// Package destsm is a destination's decisions as a pure state machine:
// given a message and the time, what to write, which attempt to start,
// when to wake up. The destination actor (package actors) is a thin shell
// that feeds it and performs what it decides, the way etcd raft's node.go
// runs what raft.go's Step decides.
//
//	         Enqueue, Loaded, AttemptDone, Unreadable, Skipped,
//	         Committed, Tick, Reconfigure, Idle, DeadExpired
//	shell ─────────────────────────────────────────────────▶ Machine.Step(now, msg)
//	  ▲                                                          │
//	  └──── Write, Load, StartAttempt, Recall, SetTimer,  ◀──────┘
//	        DeadLettered, ReplayFinished, Fail, Passivate
//
// # What it decides
//
//   - The window: at most Params.Window queue entries are held in memory,
//     in queue order; the rest stay on disk and are asked for with Load when
//     the window is half empty (or empty, for a window of one). A page that
//     comes back short means the rest is still being written; the machine
//     waits for that write instead of asking again. An entry appended
//     while the window is behind the disk keeps its event (the Enqueue's
//     Payload) when the window has room for it, and the page that brings
//     it in carries it, so a destination that fell behind once does not
//     read every later event back from the store.
//   - Ordering: in ordered mode entries go out one at a time, in queue
//     order, and a later entry never starts while an earlier one waits for
//     a retry. The machine hands the shell the next entries ahead of time,
//     each chained to the one before (StartAttempt.After): the shell starts
//     a chained attempt only once its predecessor got a 2xx, and reports it
//     Skipped otherwise, so the receiver sees the same sequence as if the
//     machine had started each one itself, without a round trip through the
//     machine between two events. An outcome (delivered or dead-lettered)
//     is written while the next entries go; the attempts handed over and
//     the outcome Writes not yet durable are together at most
//     Params.Pipeline (a pipeline of 1 waits for each outcome), which
//     bounds what a crash sends again; at most MaxChained of them are
//     attempts, and a change of the destination's configuration recalls
//     those not started (Recall). After a failed attempt, or with a rate
//     limit, one attempt runs at a time, unchained. In parallel mode
//     up to max_in_flight attempts run, each entry on its own schedule.
//   - Retries: exponential backoff with full jitter from Params.Rand, capped
//     by backoff_max; a Retry-After on a 429 or 503 replaces it (capped the
//     same way). After max_attempts in the current round the entry is
//     dead-lettered. A replay starts a new round on the same record.
//   - The circuit breaker: BreakerThreshold failures in a row open it; the
//     next entry due is then the probe and nothing starts beside it; a
//     success closes it.
//   - The rate limit: attempt starts at least 1/rate_limit seconds apart.
//   - Passivation: Idle answers Passivate only with nothing in memory, in
//     flight, being written or left on disk.
//   - Counts: the queue depth and dead-letter count, moved only when the
//     Write that changes them is durable, so they always match the disk.
//   - Failure: a Write that fails makes the machine answer Fail and nothing
//     else ever again. Its memory is no longer what is on disk, and an
//     ordered destination must not go on as if an outcome were durable
//     when it is not; the shell starts a new machine from disk, which
//     sends again, in order, what was not.
//   - Recovery of the outbox: entries the shell took from the outbox itself
//     at start (Enqueue.Recovered) are remembered, so the mailbox message
//     that carried one, arriving later, is dropped as a duplicate.
//
// # Writes
//
// A Write is a list of abstract operations on one destination's keys
// (queue, delivery record, dead-letter index, the outbox acknowledgement,
// audit). The shell decides how they become durable: on one node, one
// batch through the wal's group commit; in a cluster, a proposal to the
// destination's partition. Either way it answers Committed.
//
// # What this package must never do
//
// No I/O, no goroutines, no clock, no Pebble or protoactor: everything it
// knows arrives in a message, everything it wants leaves as an effect.
// Randomness comes only from Params.Rand. Its tests are scripts
// (testdata/*.txt, see TestScripts) that feed messages and read effects.
package destsm
