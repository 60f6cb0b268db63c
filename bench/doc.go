// Package bench is the load harness behind `webhookops bench`: it measures the
// gateway on the machine it runs on and reports each figure beside the
// machine's own limit for the same load.
//
// # Scenarios
//
//   - ingest: signed POSTs to /in/{source}; a request counts when it is answered
//     202 (durably committed). It measures durable ingest alone: the source is
//     routed to one destination, paused, so every event writes what a routed
//     event writes on its way in (event, dedupe key, received audit and outbox
//     entry in the synced commit before the 202; then the destination's queue
//     entry) and no delivery starts: e2e measures delivery. The sink is the
//     paused destination's URL, and a delivery reaching it fails the run.
//     With --baseline it also reports the CPU per request of each side
//     (cpu_us_per_req: the harness and the server child;
//     baseline_cpu_us_per_req; cpu_ratio, the baseline's over ours),
//     steadier than the rates on a shared machine.
//   - e2e: the same load, measured from the intended send time to the moment a
//     local sink receives the delivery (matched on the X-Webhook-Id header, which
//     the gateway forwards and which carries the send time). It also reports
//     how many were delivered while the load ran (delivered_during_load) and
//     how fast the rest went once it stopped (drain_per_s), and the CPU the
//     harness and the server child spent per delivery from the measured
//     phase's start to the last delivery (cpu_us_per_delivery; with
//     --baseline, cpu_ratio against the no-op handler's CPU per request). With --ordering
//     ordered it also reports the ceiling of one ordered destination: a loop
//     of sequential POSTs to the same sink over one keep-alive connection,
//     run after the drain for --duration, from the harness's own process
//     (sequential_post_ceiling) and from a child process, as the server
//     posts (`bench sequential-posts`, hidden: sequential_post_ceiling_2proc),
//     and the destination's deliveries per second over each
//     (ratio_to_sequential, ratio_to_sequential_2proc).
//   - recovery: N events pile up while the sink stalls, the server is killed with
//     SIGKILL, the sink comes back, the server is restarted on the same data dir;
//     reports restart-to-ready, restart-to-first-delivery and restart-to-drained.
//   - destinations: a config with N idle destinations; reports the server's RSS.
//   - tunnel-http, tunnel-tcp: HTTP requests (keep-alive, one stream per
//     connection) and bulk 256 KiB writes over a TCP forward that reaches a
//     loopback app through an agent. The harness starts `serve --tunnel-addr
//     --admin-token` with the agent and the forward in its config, mints the
//     agent's secret through the admin API (POST /api/v1/agents/{id}/secret),
//     pins the fingerprint of the tunnel-cert.pem the server wrote into its
//     data dir, starts `agentd join` (--agent-bin, default beside the server
//     binary) and waits until a probe reaches the app through the forward.
//     A forward set up by hand works too (--forward-addr, --app-addr). When
//     neither is possible the scenario reports ErrNotAvailable with the reason
//     and, with --baseline, still measures the direct half. Each runs once per
//     --transport (quic and tcp by default: agentd --transport), one row each,
//     named tunnel-http/quic, tunnel-http/tcp and so on.
//
// Each scenario starts what it measures (a child `webhookops serve` on a temporary
// data dir, an in-process sink) unless Options.Target names a running server.
// Everything it sends goes to loopback: a non-loopback target is refused, and the
// load generator's dialer refuses any non-loopback address as a second check.
//
// # Coordinated omission
//
// Open-loop mode (the default, Options.Rate) gives request i the intended send
// time start + i/rate and measures its latency from that instant, not from the
// moment a worker got round to sending it. A worker takes the next slot, sleeps
// until its intended time (if that is still ahead) and sends. When the server
// stalls, every worker is stuck in a request, the following slots fall behind
// schedule, and their latency includes the time they waited to be sent: a
// one-second stall shows as a second of latency spread over every request that
// should have gone out during it, instead of as one slow request among many fast
// ones (which is what a closed-loop tool that waits for each answer before
// sending the next one reports; Gil Tene's "coordinated omission"). The workers
// are a fixed pool (Options.Concurrency, like wrk2's connections), so the
// generator never spawns a goroutine per request; if the pool is too small for
// rate × latency the run is behind schedule and the latencies say so.
//
// Closed-loop mode (Options.Max) answers a different question, peak throughput:
// Concurrency workers each send, wait for the answer and send again. Its
// latencies are service times and are labelled as such in the report mode.
//
// Latencies go into one HDR histogram per phase (microsecond resolution, three
// significant digits, up to an hour) and are reported in milliseconds as p50,
// p90, p99, p99.9 and max.
//
// # Baseline and ratio
//
// With Options.Baseline the same load runs, in the same process and the same
// run, against the machine's limit for it: an in-process no-op Go HTTP handler on
// loopback that reads the body and answers 202 with a small JSON body like the
// real one (ingest, e2e), or a direct loopback connection to the app (tunnel
// scenarios). The report gives our figure, the baseline's and Ratio = ours /
// baseline. In closed-loop mode the throughput ratio is the headline (what share
// of what this machine could do at all does the gateway achieve); in open-loop
// mode both sides normally achieve the requested rate and the latency columns
// (and the extra p99_ratio) carry the comparison. For destinations the baseline
// is the same server with a single destination and the ratio is of RSS.
//
// tunnel-tcp over QUIC has two more baselines: a bare quic-go stream with
// the tunnel's flow-control windows between two ends in the harness's own
// process (extra figures quic_mbps and ratio_to_quic), and the same stream
// to a sink in a child process (`bench quic-sink`, a hidden command;
// quic_2proc_mbps and ratio_to_quic_2proc, the goal's baseline). A tunnel's
// two ends are always two processes, and on a small shared machine a
// process pays CPU of its own for each wakeup from another (its scheduler,
// sysmon, futexes) that one process handing packets to itself does not:
// the same stream costs 30-50% more CPU per MB across two processes (four
// runs, each pair in one run).
//
// The tunnel scenarios also report the CPU time each path costs per
// request or per MB (this process's, plus the server's and agent's on the
// tunnel's side, the sink's for the two-process stream) and their ratios
// (cpu_ratio, cpu_ratio_to_quic, cpu_ratio_to_quic_2proc), and others_cores,
// the CPU the rest of the machine used meanwhile. With neighbours busy the
// rate ratios lean towards whichever side runs in more processes (each
// busy thread gets its share of the machine), by a factor of three with
// three busy loops beside the run; the CPU ratios move far less (0.47 to
// 0.70 for HTTP, 0.54 to 0.58 for bulk). The tunnel's goals are therefore
// judged on the CPU ratios. On a quiet machine (others_cores near 0) the
// rates mean something too: HTTP's rate and CPU ratios then agree.
//
// On a shared machine the load of neighbours drifts during a run. --rounds N
// (ingest, tunnel-http) splits the duration into N slices per side run in
// ABBA order (ours, baseline, baseline, ours, ...) so a drift hits both sides
// alike; before each baseline slice the gateway is given time to deliver what
// it accepted, so the baseline does not share the CPU with our backlog.
// tunnel-tcp takes turns the same way among the tunnel, direct TCP and the
// bare QUIC streams, the order rotating each round.
//
// # Goals
//
// Each scenario with a goal (goals.go: the speed issue's table, e.g. ingest at
// 0.45 of a no-op handler, tunnel-http at 0.5 of direct by CPU per request,
// tunnel-tcp over QUIC at 0.8 of the two-process bare quic-go stream by CPU
// per MB, over TCP at 232 MB/s) reports the goal
// and "of goal", the achieved figure over the target (1 or more: met), beside
// its ratio to the baseline.
//
// # Recovery without backoff in the way
//
// The backlog piles up while the sink holds every delivery open without
// answering (the destination timeout is set to minutes). A sink that refused
// connections or answered 503 would instead push each event through its
// max_attempts and backoff, into the dead-letter queue or to a due time far
// ahead, and the restart would then measure the retry schedule rather than
// recovery. Held requests never count as delivered; after the restart every
// unique webhook-id the sink sees counts once, duplicates are reported.
//
// # Running
//
//	go run ./cmd/webhookops bench ingest --baseline --duration 10s --rate 2000
//	go run ./cmd/webhookops bench ingest --max -c 64 --baseline --rounds 6 --json ingest.json
//	go run ./cmd/webhookops bench e2e --baseline --rate 1000
//	go run ./cmd/webhookops bench recovery --events 1000000 --duration 30m
//	go run ./cmd/webhookops bench destinations --destinations 10000 --baseline
//	go run ./cmd/webhookops bench all --baseline --json all.json
//
// The table goes to stdout, the progress bar to stderr, and only when both are
// terminals and no --json is written (a redirected or piped run would keep
// every redraw of the bar; --quiet drops it on a terminal too), the child
// server's output to a log file in its temporary directory (shown
// when it fails; --server-log copies it to stderr). Run figures are only as
// good as the machine is quiet: the ratio to the baseline, measured in the
// same run, is what survives a noisy neighbour.
//
// The generator and the server share the machine (two cores on the reference
// boxes), so the generator is kept lean: a fixed worker pool, one reused body
// buffer and HMAC state per worker, keep-alive connections
// (MaxIdleConnsPerHost = Concurrency), and one histogram behind a mutex.
package bench
