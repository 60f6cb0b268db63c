package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/client"
	"github.com/webhookops/webhookops/wal"
)

func tokenCommand() *cli.Command {
	dataDir := &cli.StringFlag{Name: "data-dir", EnvVars: []string{"WEBHOOKOPS_DATA_DIR_OFFLINE"},
		Usage: "work on this data dir directly instead of through the API (only while the server is stopped)"}
	return &cli.Command{
		Name:  "token",
		Usage: "manage admin API tokens",
		Subcommands: []*cli.Command{
			{Name: "create", Usage: "create a token; prints it once", ArgsUsage: "NAME", Flags: commonFlags(
				&cli.StringFlag{Name: "role", Value: admin.RoleAdmin, Usage: "admin, or read (GET and /metrics only)"}, dataDir,
			), Action: action(func(c *cli.Context, ctx context.Context, cl *client.Client) error {
				name, err := arg(c, 0, "NAME")
				if err != nil {
					return err
				}
				var out admin.CreatedToken
				if dir := c.String("data-dir"); dir != "" {
					err = offline(dir, func(db *wal.DB) error {
						toks, err := admin.ListTokens(db)
						if err != nil {
							return err
						}
						if slices.ContainsFunc(toks, func(t admin.Token) bool { return t.Name == name }) {
							return &client.Error{Kind: client.KindConflict, Msg: fmt.Sprintf("a token named %q already exists", name)}
						}
						secret, tok, err := admin.CreateToken(db, name, c.String("role"), "cli:offline", time.Now())
						if err != nil {
							return asClientError(err)
						}
						tok.Hash = ""
						out = admin.CreatedToken{Token: tok, Secret: secret}
						return nil
					})
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
			})},
			{Name: "list", Usage: "list tokens (names and roles, never the tokens)", Flags: commonFlags(dataDir), Action: action(func(c *cli.Context, ctx context.Context, cl *client.Client) error {
				var toks []admin.Token
				var err error
				if dir := c.String("data-dir"); dir != "" {
					err = offline(dir, func(db *wal.DB) error {
						toks, err = admin.ListTokens(db)
						for i := range toks {
							toks[i].Hash = ""
						}
						return err
					})
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
			})},
			{Name: "revoke", Usage: "revoke a token", ArgsUsage: "NAME", Flags: commonFlags(dataDir), Action: action(func(c *cli.Context, ctx context.Context, cl *client.Client) error {
				name, err := arg(c, 0, "NAME")
				if err != nil {
					return err
				}
				if dir := c.String("data-dir"); dir != "" {
					err = offline(dir, func(db *wal.DB) error { return asClientError(admin.RevokeToken(db, name, "cli:offline", time.Now())) })
				} else {
					err = cl.RevokeToken(ctx, name)
				}
				if err != nil {
					return err
				}
				ok(c, "revoked token %s", name)
				return nil
			})},
		},
	}
}

// offline opens the data dir itself. Pebble's lock refuses while a server
// has it open, which is what keeps the two from writing at once.
func offline(dir string, fn func(*wal.DB) error) error {
	db, err := wal.Open(dir, wal.Config{CacheSize: 8 << 20})
	if err != nil {
		if strings.Contains(err.Error(), "lock") || errors.Is(err, syscall.EAGAIN) {
			return fmt.Errorf("%s is in use (is `webhookops serve` running? then use the API: drop --data-dir): %w", dir, err)
		}
		return err
	}
	defer db.Close()
	return fn(db)
}

// asClientError gives the admin package's errors their exit codes.
func asClientError(err error) error {
	if ae, ok := err.(*admin.Error); ok {
		kind := client.KindInvalid
		switch ae.Status {
		case 404:
			kind = client.KindNotFound
		case 409:
			kind = client.KindConflict
		}
		return &client.Error{Kind: kind, Status: ae.Status, Code: ae.Code, Field: ae.Field, Msg: ae.Message}
	}
	return err
}
