package bench

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// Command returns the `bench` command with one subcommand per scenario and
// `all`: `webhookops bench ingest --max --baseline --duration 10s`.
func Command() *cli.Command {
	var subs []*cli.Command
	for _, name := range Scenarios {
		subs = append(subs, scenarioCommand(name, []string{name}, scenarioUsage[name]))
	}
	subs = append(subs, scenarioCommand(ScenarioCluster, []string{ScenarioCluster},
		"ingest and e2e over three local cluster members against one node, and the failover time until writes and deliveries resume (not part of all)"))
	subs = append(subs, scenarioCommand("all", Scenarios, "every scenario in turn, one report"), quicSinkCmd(), sequentialPostsCmd())
	return &cli.Command{
		Name:  "bench",
		Usage: "measure this machine: ingest, delivery, recovery, memory and tunnel figures, each beside the machine's own limit",
		Description: "Each scenario starts what it measures (a child `webhookops serve` on a temporary data dir, a local sink)\n" +
			"or targets a running server with --target (loopback only). Latency is measured from the intended send time\n" +
			"(open loop at --rate), so a stall is not hidden; --max runs closed-loop for peak throughput.\n" +
			"--baseline runs the same load against a no-op handler (or a direct connection) and reports the ratio.",
		Subcommands: subs,
	}
}

var scenarioUsage = map[string]string{
	ScenarioIngest:       "signed POSTs answered 202 after a durable commit",
	ScenarioE2E:          "ingest through to a local sink: ingest-to-delivered latency",
	ScenarioRecovery:     "N pending events, kill -9, restart: time to resume and to drain",
	ScenarioDestinations: "N idle destinations: the server's resident memory",
	ScenarioTunnelHTTP:   "HTTP requests through an agent to a loopback app",
	ScenarioTunnelTCP:    "bulk bytes through a raw TCP forward",
}

func benchFlags() []cli.Flag {
	d := DefaultOptions()
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Usage: "ingest URL of a running server (loopback only); default: start a child server"},
		&cli.StringFlag{Name: "sink-addr", Usage: "loopback host:port for the local sink (e2e with --target: where the server delivers)"},
		&cli.StringFlag{Name: "forward-addr", Usage: "tunnel scenarios: a server forward (loopback host:port) that reaches --app-addr through an agent"},
		&cli.StringFlag{Name: "app-addr", Usage: "tunnel scenarios: loopback host:port for the app behind the agent (default: a free port)"},
		&cli.StringFlag{Name: "agent-bin", Usage: "agentd binary for the tunnel scenarios (default: agentd beside the server binary, then PATH)"},
		&cli.StringFlag{Name: "server-bin", Usage: "webhookops binary to start (default: this executable)"},
		&cli.StringFlag{Name: "source", Value: d.Source, Usage: "source slug to post to"},
		&cli.StringFlag{Name: "secret", Value: d.Secret, Usage: "the source's signing secret"},
		&cli.Float64Flag{Name: "rate", Value: d.Rate, Usage: "open-loop requests per second"},
		&cli.BoolFlag{Name: "max", Usage: "closed loop: peak throughput with --concurrency workers"},
		&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: d.Concurrency, Usage: "workers (and connections)"},
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: d.Duration, Usage: "length of each measured phase (recovery: of the pile-up)"},
		&cli.DurationFlag{Name: "warmup", Value: d.Warmup, Usage: "unrecorded load before each measured phase (0 for none)"},
		&cli.Int64Flag{Name: "requests", Value: d.Requests, Usage: "request cap per measured phase"},
		&cli.BoolFlag{Name: "baseline", Usage: "also run the same load against the machine's limit and report the ratio"},
		&cli.IntFlag{Name: "rounds", Value: 1, Usage: "with --baseline (ingest, tunnel-http): alternate ours and the baseline in this many slices of --duration (ABBA), so a noisy neighbour hits both alike"},
		&cli.IntFlag{Name: "body-size", Value: d.BodySize, Usage: "webhook body size in bytes"},
		&cli.DurationFlag{Name: "request-timeout", Value: d.RequestTimeout, Usage: "per-request timeout"},
		&cli.DurationFlag{Name: "drain-timeout", Value: d.DrainTimeout, Usage: "how long to wait for deliveries after the load (e2e, recovery)"},
		&cli.StringFlag{Name: "ordering", Value: d.Ordering, Usage: "destination ordering: parallel or ordered"},
		&cli.IntFlag{Name: "max-in-flight", Value: d.MaxInFlight, Usage: "destination max_in_flight"},
		&cli.Int64Flag{Name: "events", Value: d.Events, Usage: "recovery: backlog size"},
		&cli.IntFlag{Name: "destinations", Value: d.Destinations, Usage: "destinations: how many idle destinations"},
		&cli.IntFlag{Name: "streams", Value: d.Streams, Usage: "tunnel-tcp: parallel TCP streams"},
		&cli.StringSliceFlag{Name: "transport", Value: cli.NewStringSlice(d.Transports...), Usage: "tunnel scenarios: what the agent dials over, one row each: quic, tcp (repeat or comma-separate)"},
		&cli.StringFlag{Name: "json", Usage: "also write every figure and the machine facts to this file"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar (there is none anyway unless stdout and stderr are terminals, or with --json)"},
		&cli.BoolFlag{Name: "server-log", Usage: "copy the child server's output to stderr"},
		&cli.BoolFlag{Name: "keep", Usage: "keep the temporary data dirs"},
	}
}

func scenarioCommand(name string, scenarios []string, usage string) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: benchFlags(),
		Action: func(c *cli.Context) error {
			opts := Options{
				Scenarios:      scenarios,
				Target:         c.String("target"),
				SinkAddr:       c.String("sink-addr"),
				ForwardAddr:    c.String("forward-addr"),
				AppAddr:        c.String("app-addr"),
				ServerBin:      c.String("server-bin"),
				AgentBin:       c.String("agent-bin"),
				Source:         c.String("source"),
				Secret:         c.String("secret"),
				Rate:           c.Float64("rate"),
				Max:            c.Bool("max"),
				Concurrency:    c.Int("concurrency"),
				Duration:       c.Duration("duration"),
				Warmup:         c.Duration("warmup"),
				Requests:       c.Int64("requests"),
				Baseline:       c.Bool("baseline"),
				Rounds:         c.Int("rounds"),
				BodySize:       c.Int("body-size"),
				RequestTimeout: c.Duration("request-timeout"),
				DrainTimeout:   c.Duration("drain-timeout"),
				Ordering:       c.String("ordering"),
				MaxInFlight:    c.Int("max-in-flight"),
				Events:         c.Int64("events"),
				Destinations:   c.Int("destinations"),
				Streams:        c.Int("streams"),
				Transports:     c.StringSlice("transport"),
				KeepData:       c.Bool("keep"),
			}
			if opts.Warmup == 0 {
				opts.Warmup = -1 // an explicit 0 means none
			}
			if showProgress(c.Bool("quiet"), c.String("json") != "", isTerminal(os.Stdout), isTerminal(os.Stderr)) {
				opts.Progress = os.Stderr
			}
			if c.Bool("server-log") {
				opts.ServerLog = os.Stderr
			}
			ctx, stop := signal.NotifyContext(contextOf(c), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, runErr := Run(ctx, opts)
			if rep == nil {
				return runErr
			}
			if err := rep.WriteTable(c.App.Writer); err != nil {
				return err
			}
			if path := c.String("json"); path != "" {
				if err := rep.WriteJSONFile(path); err != nil {
					return err
				}
			}
			return summarize(rep, runErr, len(scenarios) > 1)
		},
	}
}

// showProgress: a progress bar redraws one line with carriage returns, which
// a terminal shows as one moving line and a file or pipe keeps as thousands
// of lines. So only when both stdout (where the table goes) and stderr
// (where the bar goes) are terminals, and not for a run that writes --json
// (a script's run).
func showProgress(quiet, json, stdoutTTY, stderrTTY bool) bool {
	return !quiet && !json && stdoutTTY && stderrTTY
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func contextOf(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

// summarize turns a run's errors into the command's: the table already shows
// each one, so this only counts them. In a multi-scenario run a scenario the
// server cannot run yet is not a failure.
func summarize(rep *Report, runErr error, multi bool) error {
	if runErr == nil || rep == nil {
		return runErr
	}
	var failed, unavailable []string
	for _, s := range rep.Scenarios {
		switch {
		case s.NotAvailable:
			unavailable = append(unavailable, s.Name)
		case s.Error != "":
			failed = append(failed, s.Name)
		}
	}
	if len(failed) == 0 && len(unavailable) == 0 {
		return runErr // cancelled before a scenario ran
	}
	if len(failed) == 0 && multi {
		return nil
	}
	return fmt.Errorf("bench: did not complete: %s", strings.Join(append(failed, unavailable...), ", "))
}
