package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/admin/client"
)

// readFile decodes a JSON object from path ("-" is stdin) into v, refusing
// unknown fields.
func readFile(path string, v any) error {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return usageErr("--file: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return usageErr("--file %s: %v", path, err)
	}
	return nil
}

// kv prints an object as aligned "field  value" lines.
func kv(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	var rows [][]string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := string(m[k])
		var s string
		if json.Unmarshal(m[k], &s) == nil {
			val = s
		}
		rows = append(rows, []string{k, val})
	}
	return table(w, []string{"FIELD", "VALUE"}, rows)
}

func slugArg(c *cli.Context, flag string) (string, error) {
	if s := c.String(flag); s != "" {
		return s, nil
	}
	return arg(c, 0, strings.ToUpper(flag))
}

// --- sources ---

func sourcesCommand() *cli.Command {
	routeFlag := &cli.StringSliceFlag{Name: "route", Usage: "destination, or destination=type1,type2 (event type patterns); repeat for more"}
	return &cli.Command{
		Name:  "sources",
		Usage: "manage sources (where webhooks come in)",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list sources", Flags: commonFlags(), Action: action(runSourcesList)},
			{Name: "get", Usage: "show a source (secrets masked)", ArgsUsage: "SLUG", Flags: commonFlags(), Action: action(runSourcesGet)},
			{Name: "create", Usage: "create a source; prints its secret once", ArgsUsage: "[SLUG]", Flags: commonFlags(
				&cli.StringFlag{Name: "slug"},
				&cli.StringFlag{Name: "provider", Value: "generic", Usage: "generic, github, shopify, slack, stripe or standard-webhooks"},
				&cli.StringSliceFlag{Name: "secret", Usage: "the provider's signing secret (generated when omitted)"},
				&cli.BoolFlag{Name: "no-verify", Usage: "accept unsigned requests (verify: none)"},
				&cli.StringFlag{Name: "dedupe", Usage: "what makes two requests one event: id, or body (SHA-256 of event type and body; the default for github and shopify)"},
				routeFlag,
				&cli.StringFlag{Name: "file", Usage: "the source as a JSON object (- for stdin) instead of flags"},
			), Action: action(runSourcesCreate)},
			{Name: "update", Usage: "change a source: the flags given, or the whole object from --file", ArgsUsage: "SLUG", Flags: commonFlags(
				&cli.StringFlag{Name: "provider"},
				routeFlag,
				&cli.BoolFlag{Name: "no-routes", Usage: "remove every route"},
				&cli.BoolFlag{Name: "disable"},
				&cli.BoolFlag{Name: "enable"},
				&cli.StringFlag{Name: "file", Usage: "the source as a JSON object (- for stdin)"},
			), Action: action(runSourcesUpdate)},
			{Name: "delete", Usage: "delete a source", ArgsUsage: "SLUG", Flags: commonFlags(), Action: action(runSourcesDelete)},
			{Name: "rotate-secret", Usage: "add a new secret; the old ones stay valid until removed", ArgsUsage: "SLUG", Flags: commonFlags(
				&cli.StringFlag{Name: "secret", Usage: "the secret the provider issued (generated when omitted)"},
			), Action: action(runSourcesRotateSecret)},
			{Name: "remove-secret", Usage: "retire a secret", ArgsUsage: "SLUG SECRET_ID", Flags: commonFlags(), Action: action(runSourcesRemoveSecret)},
		},
	}
}

func runSourcesList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	items, err := cl.ListSources(ctx)
	if err != nil {
		return err
	}
	return output(c, items, func(w io.Writer) error {
		var rows [][]string
		for _, s := range items {
			var routes []string
			for _, r := range s.Routes {
				routes = append(routes, routeString(r))
			}
			rows = append(rows, []string{s.Slug, s.Provider.String(), orDash(string(s.Verify)), strconv.Itoa(len(s.Secrets)), orDash(strings.Join(routes, " ")), strconv.FormatBool(s.Disabled)})
		}
		return table(w, []string{"SLUG", "PROVIDER", "VERIFY", "SECRETS", "ROUTES", "DISABLED"}, rows)
	})
}

func runSourcesGet(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	s, err := cl.GetSource(ctx, slug)
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error { return kv(w, s) })
}

func runSourcesCreate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	var s model.Source
	if f := c.String("file"); f != "" {
		if err := readFile(f, &s); err != nil {
			return err
		}
	} else {
		slug, err := slugArg(c, "slug")
		if err != nil {
			return err
		}
		s = model.Source{Slug: slug, Provider: model.Provider(c.String("provider")), Secrets: c.StringSlice("secret"),
			Dedupe: model.Dedupe(c.String("dedupe"))}
		if c.Bool("no-verify") {
			s.Verify = model.VerifyNone
		}
		if s.Routes, err = parseRoutes(c.StringSlice("route")); err != nil {
			return err
		}
	}
	out, err := cl.CreateSource(ctx, s)
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "created source %s: POST /in/%s\n", out.Slug, out.Slug)
		for i, sec := range out.Secrets {
			fmt.Fprintf(w, "secret %s: %s   (shown only now)\n", out.SecretIDs[i], sec)
		}
		return nil
	})
}

func runSourcesUpdate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	var s model.Source
	if f := c.String("file"); f != "" {
		if err := readFile(f, &s); err != nil {
			return err
		}
		s.Slug = slug
	} else {
		cur, err := cl.GetSource(ctx, slug)
		if err != nil {
			return err
		}
		s = cur.Source
		if c.IsSet("provider") {
			s.Provider = model.Provider(c.String("provider"))
		}
		if c.IsSet("route") {
			if s.Routes, err = parseRoutes(c.StringSlice("route")); err != nil {
				return err
			}
		}
		if c.Bool("no-routes") {
			s.Routes = nil
		}
		if c.Bool("disable") {
			s.Disabled = true
		}
		if c.Bool("enable") {
			s.Disabled = false
		}
	}
	out, err := cl.UpdateSource(ctx, s)
	if err != nil {
		return err
	}
	ok(c, "updated source %s", slug)
	return output(c, out, func(io.Writer) error { return nil })
}

func runSourcesDelete(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	if err := cl.DeleteSource(ctx, slug); err != nil {
		return err
	}
	ok(c, "deleted source %s", slug)
	return nil
}

func runSourcesRotateSecret(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	out, err := cl.RotateSourceSecret(ctx, slug, c.String("secret"))
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "new secret %s: %s   (shown only now)\n", out.SecretID, out.Secret)
		fmt.Fprintf(w, "the source now accepts %d secrets; remove the old one with: webhookops sources remove-secret %s <secret_id>\n", len(out.Source.SecretIDs), slug)
		return nil
	})
}

func runSourcesRemoveSecret(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	id, err := arg(c, 1, "SECRET_ID")
	if err != nil {
		return err
	}
	out, err := cl.RemoveSourceSecret(ctx, slug, id)
	if err != nil {
		return err
	}
	ok(c, "removed secret %s from %s (%d left)", id, slug, len(out.SecretIDs))
	return output(c, out, func(io.Writer) error { return nil })
}

func routeString(r model.Route) string {
	if len(r.EventTypes) == 0 {
		return r.Destination
	}
	return r.Destination + "=" + strings.Join(r.EventTypes, ",")
}

func parseRoutes(specs []string) ([]model.Route, error) {
	var out []model.Route
	for _, s := range specs {
		dest, types, _ := strings.Cut(s, "=")
		if dest == "" {
			return nil, usageErr("--route %q: want destination or destination=type1,type2", s)
		}
		r := model.Route{Destination: dest}
		if types != "" {
			r.EventTypes = strings.Split(types, ",")
		}
		out = append(out, r)
	}
	return out, nil
}

// --- destinations ---

func destinationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "url"},
		&cli.StringFlag{Name: "mode", Usage: "http or agent"},
		&cli.StringFlag{Name: "agent", Usage: "agent id (mode agent)"},
		&cli.StringFlag{Name: "ordering", Usage: "ordered or parallel"},
		&cli.IntFlag{Name: "max-in-flight"},
		&cli.DurationFlag{Name: "timeout"},
		&cli.IntFlag{Name: "max-attempts"},
		&cli.DurationFlag{Name: "backoff-base"},
		&cli.DurationFlag{Name: "backoff-max"},
		&cli.BoolFlag{Name: "allow-private-network"},
		&cli.BoolFlag{Name: "no-verify-tls"},
		&cli.StringSliceFlag{Name: "header", Usage: "Name=Value; repeat for more"},
		&cli.Float64Flag{Name: "rate-limit", Usage: "attempts per second (0: no limit)"},
		&cli.StringFlag{Name: "file", Usage: "the destination as a JSON object (- for stdin) instead of flags"},
	}
}

// applyDestinationFlags sets the fields whose flags were given.
func applyDestinationFlags(c *cli.Context, d *model.Destination) error {
	if c.IsSet("url") {
		d.URL = c.String("url")
	}
	if c.IsSet("mode") {
		d.Mode = model.Mode(c.String("mode"))
	}
	if c.IsSet("agent") {
		d.Agent = c.String("agent")
	}
	if c.IsSet("ordering") {
		d.Ordering = model.Ordering(c.String("ordering"))
	}
	if c.IsSet("max-in-flight") {
		d.MaxInFlight = c.Int("max-in-flight")
	}
	if c.IsSet("timeout") {
		d.Timeout = model.Duration(c.Duration("timeout"))
	}
	if c.IsSet("max-attempts") {
		d.MaxAttempts = c.Int("max-attempts")
	}
	if c.IsSet("backoff-base") {
		d.BackoffBase = model.Duration(c.Duration("backoff-base"))
	}
	if c.IsSet("backoff-max") {
		d.BackoffMax = model.Duration(c.Duration("backoff-max"))
	}
	if c.IsSet("allow-private-network") {
		d.AllowPrivateNetwork = c.Bool("allow-private-network")
	}
	if c.IsSet("no-verify-tls") {
		v := !c.Bool("no-verify-tls")
		d.VerifyTLS = &v
	}
	if c.IsSet("rate-limit") {
		d.RateLimit = c.Float64("rate-limit")
	}
	if c.IsSet("header") {
		d.Headers = map[string]string{}
		for _, h := range c.StringSlice("header") {
			k, v, found := strings.Cut(h, "=")
			if !found {
				return usageErr("--header %q: want Name=Value", h)
			}
			d.Headers[k] = v
		}
	}
	return nil
}

func destinationsCommand() *cli.Command {
	return &cli.Command{
		Name:  "destinations",
		Usage: "manage destinations (where events go)",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list destinations", Flags: commonFlags(), Action: action(runDestinationsList)},
			{Name: "get", Usage: "show a destination and its queue", ArgsUsage: "SLUG", Flags: commonFlags(), Action: action(runDestinationsGet)},
			{Name: "create", Usage: "create a destination; prints its signing secret once", ArgsUsage: "[SLUG]",
				Flags:  commonFlags(append([]cli.Flag{&cli.StringFlag{Name: "slug"}}, destinationFlags()...)...),
				Action: action(runDestinationsCreate)},
			{Name: "update", Usage: "change a destination: the flags given, or the whole object from --file", ArgsUsage: "SLUG", Flags: commonFlags(destinationFlags()...),
				Action: action(runDestinationsUpdate)},
			{Name: "delete", Usage: "delete a destination", ArgsUsage: "SLUG", Flags: commonFlags(), Action: action(runDestinationsDelete)},
			{Name: "pause", Usage: "stop sending (the queue keeps filling)", ArgsUsage: "SLUG", Flags: commonFlags(), Action: action(runDestinationsPause)},
			{Name: "resume", Usage: "resume sending", ArgsUsage: "SLUG", Flags: commonFlags(), Action: action(runDestinationsResume)},
			{Name: "rotate-secret", Usage: "replace the signing secret", ArgsUsage: "SLUG", Flags: commonFlags(&cli.StringFlag{Name: "secret"}), Action: action(runDestinationsRotateSecret)},
		},
	}
}

func runDestinationsPause(ctx context.Context, c *cli.Context, cl *client.Client) error {
	return setPaused(ctx, c, cl.PauseDestination, "paused %s")
}

func runDestinationsResume(ctx context.Context, c *cli.Context, cl *client.Client) error {
	return setPaused(ctx, c, cl.ResumeDestination, "resumed %s")
}

// setPaused pauses or resumes the destination SLUG through call.
func setPaused(ctx context.Context, c *cli.Context, call func(context.Context, string) (api.DestinationOut, error), done string) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	out, err := call(ctx, slug)
	if err != nil {
		return err
	}
	ok(c, done, slug)
	return output(c, out, func(io.Writer) error { return nil })
}

func runDestinationsList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	items, err := cl.ListDestinations(ctx)
	if err != nil {
		return err
	}
	return output(c, items, func(w io.Writer) error {
		var rows [][]string
		for _, d := range items {
			x := d.WithDefaults()
			rows = append(rows, []string{d.Slug, d.URL, x.Mode.String(), x.Ordering.String(), strconv.Itoa(x.MaxInFlight), strconv.Itoa(x.MaxAttempts), strconv.FormatBool(d.Paused)})
		}
		return table(w, []string{"SLUG", "URL", "MODE", "ORDERING", "IN_FLIGHT", "MAX_ATTEMPTS", "PAUSED"}, rows)
	})
}

func runDestinationsGet(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	d, err := cl.GetDestination(ctx, slug)
	if err != nil {
		return err
	}
	return output(c, d, func(w io.Writer) error {
		if err := kv(w, d.Destination); err != nil {
			return err
		}
		if st := d.Stats; st != nil {
			fmt.Fprintf(w, "\nqueue: %d pending, %d in flight, %d dead letters, oldest pending %s, circuit open: %v\n",
				st.QueueDepth, st.InFlight, st.DeadLetters, ageString(st.OldestPendingAgeSec), st.CircuitOpen)
		}
		return nil
	})
}

func runDestinationsCreate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	var d model.Destination
	if f := c.String("file"); f != "" {
		if err := readFile(f, &d); err != nil {
			return err
		}
	} else {
		slug, err := slugArg(c, "slug")
		if err != nil {
			return err
		}
		d.Slug = slug
		if err := applyDestinationFlags(c, &d); err != nil {
			return err
		}
	}
	out, err := cl.CreateDestination(ctx, d)
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "created destination %s -> %s\nsigning secret: %s   (shown only now)\n", out.Slug, out.URL, out.SigningSecret)
		return nil
	})
}

func runDestinationsUpdate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	var d model.Destination
	if f := c.String("file"); f != "" {
		if err := readFile(f, &d); err != nil {
			return err
		}
		d.Slug = slug
	} else {
		cur, err := cl.GetDestination(ctx, slug)
		if err != nil {
			return err
		}
		d = cur.Destination
		if err := applyDestinationFlags(c, &d); err != nil {
			return err
		}
	}
	out, err := cl.UpdateDestination(ctx, d)
	if err != nil {
		return err
	}
	ok(c, "updated destination %s", slug)
	return output(c, out, func(io.Writer) error { return nil })
}

func runDestinationsDelete(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	if err := cl.DeleteDestination(ctx, slug); err != nil {
		return err
	}
	ok(c, "deleted destination %s", slug)
	return nil
}

func runDestinationsRotateSecret(ctx context.Context, c *cli.Context, cl *client.Client) error {
	slug, err := arg(c, 0, "SLUG")
	if err != nil {
		return err
	}
	out, err := cl.RotateSigningSecret(ctx, slug, c.String("secret"))
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "new signing secret: %s   (shown only now)\n", out.Secret)
		return nil
	})
}

func ageString(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	return (time.Duration(sec * float64(time.Second))).Round(time.Second).String() + " ago"
}

// --- agents ---

func agentsCommand() *cli.Command {
	return &cli.Command{
		Name:  "agents",
		Usage: "manage agents (private networks that dial in)",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list agents", Flags: commonFlags(), Action: action(runAgentsList)},
			{Name: "get", Usage: "show an agent", ArgsUsage: "ID", Flags: commonFlags(), Action: action(runAgentsGet)},
			{Name: "create", Usage: "create an agent; prints its secret once", ArgsUsage: "ID", Flags: commonFlags(
				&cli.StringSliceFlag{Name: "allow", Usage: "host:port the agent may reach; repeat for more"},
			), Action: action(runAgentsCreate)},
			{Name: "enroll", Usage: "create an agent, or give it a new secret (cutting its session); prints the agentd command to run", ArgsUsage: "ID", Flags: commonFlags(
				&cli.StringSliceFlag{Name: "allow", Usage: "host:port the agent may reach; repeat for more (replaces the list; omit to keep it)"},
			), Action: action(runAgentsEnroll)},
			{Name: "update", Usage: "replace an agent's allowed targets", ArgsUsage: "ID", Flags: commonFlags(
				&cli.StringSliceFlag{Name: "allow", Usage: "host:port the agent may reach; repeat for more"},
			), Action: action(runAgentsUpdate)},
			{Name: "delete", Usage: "delete an agent", ArgsUsage: "ID", Flags: commonFlags(), Action: action(runAgentsDelete)},
			{Name: "rotate-secret", Usage: "give an agent a new secret (the old one stops working)", ArgsUsage: "ID", Flags: commonFlags(), Action: action(runAgentsRotateSecret)},
		},
	}
}

func runAgentsList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	items, err := cl.ListAgents(ctx)
	if err != nil {
		return err
	}
	return output(c, items, func(w io.Writer) error {
		var rows [][]string
		clustered := false
		for _, a := range items {
			rows = append(rows, []string{a.ID, orDash(strings.Join(a.AllowedTargets, " ")), strconv.FormatBool(a.Online), fmtTime(a.LastSeen), agentMembersCell(a.Members)})
			clustered = clustered || len(a.Members) > 0
		}
		head := []string{"ID", "ALLOWED_TARGETS", "ONLINE", "LAST_SEEN", "MEMBERS"}
		head, rows = membersColumn(clustered, head, rows)
		return table(w, head, rows)
	})
}

func runAgentsGet(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "ID")
	if err != nil {
		return err
	}
	a, err := cl.GetAgent(ctx, id)
	if err != nil {
		return err
	}
	return output(c, a, func(w io.Writer) error {
		plain := a
		plain.Members = nil
		if err := kv(w, plain); err != nil {
			return err
		}
		return agentMembersTable(w, a.Members)
	})
}

func runAgentsCreate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "ID")
	if err != nil {
		return err
	}
	out, err := cl.CreateAgent(ctx, model.Agent{ID: id, AllowedTargets: c.StringSlice("allow")})
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "created agent %s\nsecret: %s   (shown only now; give it to agentd)\n", out.ID, out.Secret)
		if out.EnrollCommand != "" {
			fmt.Fprintf(w, "start it on the private network with:\n    %s\n", out.EnrollCommand)
		}
		return nil
	})
}

func runAgentsEnroll(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "ID")
	if err != nil {
		return err
	}
	var allowed []string
	if c.IsSet("allow") {
		allowed = c.StringSlice("allow")
	}
	out, err := cl.Enroll(ctx, id, allowed)
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		if out.Created {
			fmt.Fprintf(w, "enrolled new agent %s.\n", out.ID)
		} else {
			fmt.Fprintf(w, "gave agent %s a new secret; its old one no longer works.\n", out.ID)
		}
		fmt.Fprintf(w, "Run this where the agent can reach its targets (the secret is shown only now):\n\n    %s\n\n", out.Command)
		if len(out.AllowedTargets) == 0 {
			fmt.Fprintln(w, "The agent allows no target yet: enroll again with --allow HOST:PORT.")
		}
		return nil
	})
}

func runAgentsUpdate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "ID")
	if err != nil {
		return err
	}
	out, err := cl.UpdateAgent(ctx, model.Agent{ID: id, AllowedTargets: c.StringSlice("allow")})
	if err != nil {
		return err
	}
	ok(c, "updated agent %s", id)
	return output(c, out, func(io.Writer) error { return nil })
}

func runAgentsDelete(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "ID")
	if err != nil {
		return err
	}
	if err := cl.DeleteAgent(ctx, id); err != nil {
		return err
	}
	ok(c, "deleted agent %s", id)
	return nil
}

func runAgentsRotateSecret(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "ID")
	if err != nil {
		return err
	}
	out, err := cl.RotateAgentSecret(ctx, id)
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "new secret for %s: %s   (shown only now)\n", id, out.Secret)
		if out.EnrollCommand != "" {
			fmt.Fprintf(w, "restart agentd with:\n    %s\n", out.EnrollCommand)
		}
		return nil
	})
}

// --- forwards ---

func forwardsCommand() *cli.Command {
	return &cli.Command{
		Name:  "forwards",
		Usage: "manage raw TCP forwards (a local port that reaches a private host:port through an agent)",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list forwards", Flags: commonFlags(), Action: action(runForwardsList)},
			{Name: "get", Usage: "show a forward", ArgsUsage: "LISTEN", Flags: commonFlags(), Action: action(runForwardsGet)},
			{Name: "create", Usage: "listen on --listen and send each connection through --agent to --target", Flags: commonFlags(
				&cli.StringFlag{Name: "listen", Usage: "host:port to listen on (this node)", Required: true},
				&cli.StringFlag{Name: "agent", Usage: "agent id", Required: true},
				&cli.StringFlag{Name: "target", Usage: "host:port the agent connects to (must be in its allowed targets)", Required: true},
				&cli.BoolFlag{Name: "public", Usage: "allow --listen beyond loopback (0.0.0.0, a LAN address): anyone who reaches it reaches the target"},
			), Action: action(runForwardsCreate)},
			{Name: "delete", Usage: "stop a forward and close its listener", ArgsUsage: "LISTEN", Flags: commonFlags(), Action: action(runForwardsDelete)},
		},
	}
}

func runForwardsList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	items, err := cl.ListForwards(ctx)
	if err != nil {
		return err
	}
	return output(c, items, func(w io.Writer) error {
		var rows [][]string
		clustered := false
		for _, f := range items {
			rows = append(rows, []string{f.Listen, f.Agent, f.Target, strconv.FormatBool(f.AgentOnline), forwardMembersCell(f.Members)})
			clustered = clustered || len(f.Members) > 0
		}
		head := []string{"LISTEN", "AGENT", "TARGET", "AGENT_ONLINE", "MEMBERS"}
		head, rows = membersColumn(clustered, head, rows)
		return table(w, head, rows)
	})
}

func runForwardsGet(ctx context.Context, c *cli.Context, cl *client.Client) error {
	listen, err := arg(c, 0, "LISTEN")
	if err != nil {
		return err
	}
	f, err := cl.GetForward(ctx, listen)
	if err != nil {
		return err
	}
	return output(c, f, func(w io.Writer) error {
		plain := f
		plain.Members = nil
		if err := kv(w, plain); err != nil {
			return err
		}
		return forwardMembersTable(w, f.Members)
	})
}

func runForwardsCreate(ctx context.Context, c *cli.Context, cl *client.Client) error {
	out, err := cl.CreateForward(ctx, model.Forward{Listen: c.String("listen"), Agent: c.String("agent"), Target: c.String("target"), Public: c.Bool("public")})
	if err != nil {
		return err
	}
	return output(c, out, func(w io.Writer) error {
		fmt.Fprintf(w, "forwarding %s through agent %s to %s\n", out.Listen, out.Agent, out.Target)
		if !out.AgentOnline {
			fmt.Fprintf(w, "agent %s is offline: connections are refused until it joins\n", out.Agent)
		}
		return nil
	})
}

func runForwardsDelete(ctx context.Context, c *cli.Context, cl *client.Client) error {
	listen, err := arg(c, 0, "LISTEN")
	if err != nil {
		return err
	}
	if err := cl.DeleteForward(ctx, listen); err != nil {
		return err
	}
	ok(c, "deleted forward %s", listen)
	return nil
}
