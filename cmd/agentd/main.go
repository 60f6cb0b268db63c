// Command agentd is the WebhookOps agent: it dials out to the gateway's
// tunnel and connects the gateway's requests to local targets it is allowed
// to reach. Only flag parsing and wiring live here; see package agentd.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/agentd"
	"github.com/webhookops/webhookops/cmd/internal/completion"
	"github.com/webhookops/webhookops/tunnelproto"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "agentd:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "agentd",
		Usage: "WebhookOps agent: reach private apps through an outbound tunnel (QUIC, or TCP+TLS where UDP is blocked)",
		// Shell completion asks the program for candidates; see `agentd
		// completion`.
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			joinCommand(),
			completion.Command(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "agentd %s (protocol %d, %s)\n", version, tunnelproto.Version, revision())
					return nil
				},
			},
		},
	}
}

func joinCommand() *cli.Command {
	return &cli.Command{
		Name:  "join",
		Usage: "connect to the gateway and serve its requests until SIGINT/SIGTERM",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tunnel", Usage: "gateway tunnel address `HOST:PORT`; for a cluster, every member's (repeat, or comma-separated): the agent keeps a session to each", EnvVars: []string{"AGENTD_TUNNEL"}, Required: true},
			&cli.StringFlag{Name: "transport", Value: "auto", Usage: "auto (QUIC, falling back to TCP+TLS on the same port when UDP is blocked), quic or tcp", EnvVars: []string{"AGENTD_TRANSPORT"}},
			&cli.StringFlag{Name: "id", Usage: "agent id", EnvVars: []string{"AGENTD_ID"}, Required: true},
			&cli.StringFlag{Name: "secret", Usage: "agent secret (prefer --secret-file or AGENTD_SECRET: flags show in ps)", EnvVars: []string{"AGENTD_SECRET"}},
			&cli.StringFlag{Name: "secret-file", Usage: "read the agent secret from `FILE`", EnvVars: []string{"AGENTD_SECRET_FILE"}},
			&cli.StringSliceFlag{Name: "server-fingerprint", Usage: "pinned gateway certificate, `sha256:HEX`: one for every --tunnel, or one per --tunnel in the same order (repeat, or comma-separated)", EnvVars: []string{"AGENTD_SERVER_FINGERPRINT"}, Required: true},
			&cli.BoolFlag{Name: "static", Usage: "keep to the --tunnel addresses: do not join the other cluster members a gateway names (by default agentd joins every member, so one added later is joined too)", EnvVars: []string{"AGENTD_STATIC"}},
			&cli.StringSliceFlag{Name: "allow", Usage: "`HOST:PORT` this agent may connect to (repeat, or comma-separated)", EnvVars: []string{"AGENTD_ALLOW"}},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: []string{"AGENTD_LOG_FORMAT"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"AGENTD_LOG_LEVEL"}},
			&cli.DurationFlag{Name: "dial-timeout", Value: 10 * time.Second, Usage: "timeout for connecting to a target", EnvVars: []string{"AGENTD_DIAL_TIMEOUT"}},
			&cli.DurationFlag{Name: "drain-timeout", Value: 10 * time.Second, Usage: "how long in-flight requests may finish on shutdown", EnvVars: []string{"AGENTD_DRAIN_TIMEOUT"}},
			&cli.IntFlag{Name: "procs", Value: 1, Usage: "threads running Go code at once (GOMAXPROCS; 0: one per CPU). One carries a tunnel's single connection at the least CPU per request; a GOMAXPROCS variable wins over the default", EnvVars: []string{"AGENTD_PROCS"}},
		},
		Action: join,
	}
}

func join(c *cli.Context) error {
	log, err := newLogger(c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	secret, err := readSecret(c.String("secret"), c.String("secret-file"))
	if err != nil {
		return err
	}
	transport, err := tunnelproto.ParseTransport(c.String("transport"))
	if err != nil {
		return fmt.Errorf("--transport: %w", err)
	}
	procs, err := procsSetting(c.Int("procs"), c.IsSet("procs"), os.Getenv("GOMAXPROCS"))
	if err != nil {
		return err
	}
	tunnels, err := agentd.Endpoints(c.StringSlice("tunnel"), c.StringSlice("server-fingerprint"))
	if err != nil {
		return fmt.Errorf("--tunnel, --server-fingerprint: %w", err)
	}
	cfg := agentd.DefaultConfig()
	cfg.Tunnels = tunnels
	cfg.Transport = transport
	cfg.ID = c.String("id")
	cfg.Secret = secret
	cfg.Allow = c.StringSlice("allow")
	cfg.Static = c.Bool("static")
	cfg.Logger = log
	cfg.DialTimeout = c.Duration("dial-timeout")
	cfg.DrainTimeout = c.Duration("drain-timeout")
	a, err := agentd.New(cfg)
	if err != nil {
		return err
	}
	if procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("agentd starting", "version", version, "id", cfg.ID, "tunnels", c.StringSlice("tunnel"), "transport", cfg.Transport.String(), "allow", cfg.Allow, "procs", runtime.GOMAXPROCS(0))
	return a.Run(ctx)
}

// procsSetting decides the GOMAXPROCS to set from --procs (flag, and
// whether it was given) and the GOMAXPROCS variable; 0 means leave the
// runtime's choice. The agent moves one tunnel connection, whose packets
// quic-go handles on one goroutine anyway: on one P the goroutines it hands
// packets to run on the same thread, where with more each handoff can wake
// another one, which on a small VM cost the agent 8-12% more CPU per
// request or MB (issue 12's measurements). An explicit GOMAXPROCS variable
// is the operator's choice and wins over the default, not over --procs.
func procsSetting(flag int, flagSet bool, env string) (int, error) {
	switch {
	case flag < 0:
		return 0, fmt.Errorf("--procs %d: want 0 (one per CPU) or more", flag)
	case env != "" && !flagSet:
		return 0, nil
	}
	return flag, nil
}

func readSecret(flag, file string) (string, error) {
	switch {
	case flag != "" && file != "":
		return "", errors.New("give the secret with --secret or --secret-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--secret-file: %w", err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("--secret-file: %s is empty", file)
		}
		return s, nil
	case flag != "":
		return flag, nil
	}
	return "", errors.New("the agent secret is required: --secret-file, --secret or AGENTD_SECRET")
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	switch format {
	case "text":
		return slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{Level: lvl, TimeFormat: time.DateTime})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown revision"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return "revision " + s.Value
		}
	}
	return info.GoVersion
}
