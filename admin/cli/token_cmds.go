package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/admin/client"
)

// Offline manages the tokens of a stopped server's data dir, for `token
// create|list|revoke --data-dir`: the way back in when every token is
// lost. The CLI links no storage itself; the binary that holds the server
// passes one (admin.OfflineTokens). Errors that are an *api.Error keep
// their exit code (conflict, not found, invalid).
type Offline interface {
	ListTokens(dir string) ([]api.Token, error)
	CreateToken(dir, name, role, by string) (api.CreatedToken, error)
	RevokeToken(dir, name, by string) error
}

// offlineActor is the audit log's name for a change made on a data dir.
const offlineActor = "cli:offline"

// tokenCommands are the token verbs; off opens a data dir for --data-dir.
type tokenCommands struct{ off Offline }

func tokenCommand(off Offline) *cli.Command {
	dataDir := &cli.StringFlag{Name: "data-dir", EnvVars: []string{"WEBHOOKOPS_DATA_DIR_OFFLINE"},
		Usage: "work on this data dir directly instead of through the API (only while the server is stopped)"}
	t := tokenCommands{off: off}
	return &cli.Command{
		Name:  "token",
		Usage: "manage admin API tokens",
		Subcommands: []*cli.Command{
			{Name: "create", Usage: "create a token; prints it once", ArgsUsage: "NAME", Flags: commonFlags(
				&cli.StringFlag{Name: "role", Value: api.RoleAdmin, Usage: "admin, or read (GET and /metrics only)"}, dataDir,
			), Action: action(t.runCreate)},
			{Name: "list", Usage: "list tokens (names and roles, never the tokens)", Flags: commonFlags(dataDir),
				Action: action(t.runList)},
			{Name: "revoke", Usage: "revoke a token", ArgsUsage: "NAME", Flags: commonFlags(dataDir),
				Action: action(t.runRevoke)},
		},
	}
}

// offlineDir is --data-dir, or "" to go through the API. It refuses when
// this binary cannot open a data dir.
func offlineDir(c *cli.Context, off Offline) (string, error) {
	dir := c.String("data-dir")
	if dir != "" && off == nil {
		return "", usageErr("--data-dir: this binary cannot open a data dir; run `webhookops token` from the server's binary, or drop --data-dir to use the API")
	}
	return dir, nil
}

// tokenArgs reads NAME and --data-dir.
func tokenArgs(c *cli.Context, off Offline) (name, dir string, err error) {
	if name, err = arg(c, 0, "NAME"); err != nil {
		return "", "", err
	}
	dir, err = offlineDir(c, off)
	return name, dir, err
}

func (t tokenCommands) runCreate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	name, dir, err := tokenArgs(c, t.off)
	if err != nil {
		return err
	}
	var out api.CreatedToken
	if dir != "" {
		out, err = t.off.CreateToken(dir, name, c.String("role"), offlineActor)
		err = asClientError(err)
	} else {
		out, err = cl.CreateToken(ctx, name, c.String("role"))
	}
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "created %s token %q:\n\n    %s\n\nshown only now; use it as WEBHOOKOPS_TOKEN\n", out.Role, out.Name, out.Secret)
		return nil
	})
}

func (t tokenCommands) runList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	dir, err := offlineDir(c, t.off)
	if err != nil {
		return err
	}
	var toks []api.Token
	if dir != "" {
		toks, err = t.off.ListTokens(dir)
		err = asClientError(err)
	} else {
		toks, err = cl.ListTokens(ctx)
	}
	if err != nil {
		return err
	}
	return output(c, toks, func(w io.Writer) error {
		var rows [][]string
		for _, t := range toks {
			rows = append(rows, []string{t.Name, t.Role, t.Prefix + "…", fmtTime(t.CreatedAt), orDash(t.CreatedBy)})
		}
		return table(w, []string{"NAME", "ROLE", "PREFIX", "CREATED", "BY"}, rows)
	})
}

func (t tokenCommands) runRevoke(ctx context.Context, c *cli.Context, cl *client.Client) error {
	name, dir, err := tokenArgs(c, t.off)
	if err != nil {
		return err
	}
	if dir != "" {
		err = asClientError(t.off.RevokeToken(dir, name, offlineActor))
	} else {
		err = cl.RevokeToken(ctx, name)
	}
	if err != nil {
		return err
	}
	ok(c, "revoked token %s", name)
	return nil
}

// asClientError gives the API's error shape, met offline, the exit code
// the same refusal through the API would have.
func asClientError(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	kind := client.KindInvalid
	switch ae.Status {
	case http.StatusNotFound:
		kind = client.KindNotFound
	case http.StatusConflict:
		kind = client.KindConflict
	}
	return &client.Error{Kind: kind, Status: ae.Status, Code: ae.Code, Field: ae.Field, Msg: ae.Message}
}
