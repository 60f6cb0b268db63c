// Package cli is the operator CLI of the admin API: `webhookops sources`,
// `destinations`, `agents`, `forwards`, `events`, `replay`, `dlq`, `audit` and
// `token`. Each command talks to --server (WEBHOOKOPS_SERVER, default
// http://127.0.0.1:8081) with --token (WEBHOOKOPS_TOKEN), prints aligned
// tables or, with --json, the API's JSON for scripts.
//
// Each verb is one named function, runNounVerb(ctx, c, cl) (runSourcesCreate,
// runReplayBulk, ...); the command tables only name flags and point at
// them, and action builds the client and maps errors to exit codes.
//
// Exit codes: 0 success, 1 other failures, 2 a request the server refused
// as invalid (nothing changed) or a bad flag, 3 the server could not be
// reached, 4 the token was refused (401/403), 5 not found, 6 conflict.
//
// `token create|list|revoke` go through the API; with --data-dir they work
// on the data directory directly, which is only possible while the server
// is stopped (the store is locked while it runs). That is the way back in
// when every token is lost. This package links no storage: the binary
// passes an Offline that opens the dir (cmd/webhookops gives
// admin.OfflineTokens), and a test keeps Pebble, protoactor and quic-go
// out of its imports.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin/client"
)

// Exit codes.
const (
	ExitFailure    = 1
	ExitInvalid    = 2
	ExitConnection = 3
	ExitAuth       = 4
	ExitNotFound   = 5
	ExitConflict   = 6
)

// Commands returns the CLI's top-level commands. off serves `token
// --data-dir`; nil refuses that flag.
func Commands(off Offline) []*cli.Command {
	return []*cli.Command{
		sourcesCommand(),
		destinationsCommand(),
		agentsCommand(),
		forwardsCommand(),
		eventsCommand(),
		replayCommand(),
		dlqCommand(),
		auditCommand(),
		tokenCommand(off),
	}
}

func commonFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "server", Value: client.DefaultServer, EnvVars: []string{"WEBHOOKOPS_SERVER"}, Usage: "admin API base URL"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"WEBHOOKOPS_TOKEN"}, Usage: "admin API token"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
	}, extra...)
}

// action wraps a command body: it builds the client, cancels on Ctrl-C and
// turns errors into exit codes.
func action(fn func(ctx context.Context, c *cli.Context, cl *client.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		cl, err := client.New(c.String("server"), c.String("token"))
		if err != nil {
			return exitErr(err)
		}
		ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return exitErr(fn(ctx, c, cl))
	}
}

func exitErr(err error) error {
	if err == nil {
		return nil
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return cli.Exit("webhookops: interrupted", 130)
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		code := map[string]int{
			client.KindConnection: ExitConnection,
			client.KindAuth:       ExitAuth,
			client.KindInvalid:    ExitInvalid,
			client.KindNotFound:   ExitNotFound,
			client.KindConflict:   ExitConflict,
		}[ce.Kind]
		if code == 0 {
			code = ExitFailure
		}
		return cli.Exit("webhookops: "+ce.Error(), code)
	}
	return cli.Exit("webhookops: "+err.Error(), ExitFailure)
}

func usageErr(format string, args ...any) error {
	return cli.Exit("webhookops: "+fmt.Sprintf(format, args...), ExitInvalid)
}

// arg returns the i-th positional argument, or a usage error naming it.
func arg(c *cli.Context, i int, name string) (string, error) {
	if c.NArg() <= i || c.Args().Get(i) == "" {
		return "", usageErr("missing %s (usage: %s %s)", name, c.Command.HelpName, c.Command.ArgsUsage)
	}
	return c.Args().Get(i), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table prints rows aligned under a header.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// output prints v as JSON with --json, else calls tbl.
func output(c *cli.Context, v any, tbl func(io.Writer) error) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	return tbl(c.App.Writer)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// parseTime reads an RFC 3339 time or a duration ago ("90m": 90 minutes
// ago).
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--%s: %q is neither a time (2026-01-02T15:04:05Z) nor a duration ago (90m)", flag, s)
}

func ok(c *cli.Context, format string, args ...any) {
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, format+"\n", args...)
	}
}
