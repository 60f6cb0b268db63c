package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/admin/client"
	"github.com/webhookops/webhookops/wal/model"
)

func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "source"},
		&cli.StringFlag{Name: "destination"},
		&cli.StringFlag{Name: "status", Usage: "pending, delivered, dead_lettered or no_destinations"},
		&cli.StringFlag{Name: "event-type", Usage: "a type or a pattern (invoice.*)"},
		&cli.StringFlag{Name: "since", Usage: "a time (2026-01-02T15:04:05Z) or a duration ago (90m)"},
		&cli.StringFlag{Name: "until", Usage: "a time or a duration ago"},
		&cli.StringFlag{Name: "key", Usage: "idempotency key / provider event id"},
	}
}

func filterFrom(c *cli.Context) (model.EventFilter, error) {
	f := model.EventFilter{
		Source: c.String("source"), Destination: c.String("destination"), Status: model.EventStatus(c.String("status")),
		EventType: c.String("event-type"), IdempotencyKey: c.String("key"),
	}
	var err error
	if f.Since, err = parseTime("since", c.String("since")); err != nil {
		return f, err
	}
	f.Until, err = parseTime("until", c.String("until"))
	return f, err
}

func eventRow(e api.EventOut) []string {
	var ds []string
	for _, d := range e.Deliveries {
		ds = append(ds, fmt.Sprintf("%s:%s(%d)", d.Destination, d.Status, len(d.Attempts)))
	}
	return []string{e.ID, fmtTime(e.ReceivedAt), e.Source, orDash(e.EventType), e.Status.String(), orDash(strings.Join(ds, " "))}
}

var eventHeader = []string{"ID", "RECEIVED", "SOURCE", "TYPE", "STATUS", "DELIVERIES"}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "find events and see their attempts",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list events, newest first", Flags: commonFlags(append(filterFlags(),
				&cli.IntFlag{Name: "limit", Value: 50},
				&cli.StringFlag{Name: "cursor", Usage: "next_cursor of a previous page"},
			)...), Action: action(runEventsList)},
			{Name: "get", Usage: "show an event with every attempt", ArgsUsage: "EVENT_ID", Flags: commonFlags(
				&cli.BoolFlag{Name: "body", Usage: "print the raw body and headers too"},
			), Action: action(runEventsGet)},
			{Name: "tail", Usage: "follow new events as they arrive (polls)", Flags: commonFlags(append(filterFlags(),
				&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "how often to poll"},
				&cli.IntFlag{Name: "last", Value: 10, Usage: "how many recent events to show first"},
			)...), Action: action(runEventsTail)},
		},
	}
}

func runEventsList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	f, err := filterFrom(c)
	if err != nil {
		return err
	}
	p, err := cl.ListEvents(ctx, f, c.String("cursor"), c.Int("limit"))
	if err != nil {
		return err
	}
	return output(c, p, func(w io.Writer) error {
		var rows [][]string
		for _, e := range p.Items {
			rows = append(rows, eventRow(e))
		}
		if err := table(w, eventHeader, rows); err != nil {
			return err
		}
		if p.NextCursor != "" {
			fmt.Fprintf(w, "more: --cursor %s\n", p.NextCursor)
		}
		return nil
	})
}

func runEventsGet(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "EVENT_ID")
	if err != nil {
		return err
	}
	e, err := cl.GetEvent(ctx, id)
	if err != nil {
		return err
	}
	return output(c, e, func(w io.Writer) error {
		fmt.Fprintf(w, "event %s  source %s  type %s  key %s\nreceived %s  status %s  body %d bytes\n",
			e.ID, e.Source, orDash(e.EventType), e.IdempotencyKey, fmtTime(e.ReceivedAt), e.Status, e.BodySize)
		for _, d := range e.Deliveries {
			fmt.Fprintf(w, "\n%s: %s", d.Destination, d.Status)
			if !d.NextAttemptAt.IsZero() {
				fmt.Fprintf(w, ", next attempt %s", fmtTime(d.NextAttemptAt))
			}
			fmt.Fprintln(w)
			var rows [][]string
			for _, a := range d.Attempts {
				code := "-"
				if a.StatusCode != 0 {
					code = strconv.Itoa(a.StatusCode)
				}
				rows = append(rows, []string{strconv.Itoa(a.N), fmtTime(a.At), fmt.Sprintf("%.1fms", a.DurationMS), code, orDash(a.ReplayID), orDash(excerpt(a.Error + a.Response))})
			}
			if len(rows) > 0 {
				table(w, []string{"  #", "AT", "DURATION", "CODE", "REPLAY", "ERROR/RESPONSE"}, indent(rows))
			}
		}
		if c.Bool("body") {
			fmt.Fprintln(w, "\nheaders:")
			for _, h := range e.Headers {
				fmt.Fprintf(w, "  %s: %s\n", h.Name, h.Value)
			}
			fmt.Fprintf(w, "\nbody (%s):\n%s\n", e.BodyEncoding, e.Body)
		}
		return nil
	})
}

func runEventsTail(ctx context.Context, c *cli.Context, cl *client.Client) error {
	f, err := filterFrom(c)
	if err != nil {
		return err
	}
	return tail(ctx, c, cl, f)
}

func indent(rows [][]string) [][]string {
	for _, r := range rows {
		r[0] = "  " + r[0]
	}
	return rows
}

func excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// eventSeq is an event's sequence (0 for an id it cannot read): later
// events have higher ones.
func eventSeq(id string) uint64 {
	_, seq, _ := model.ParseEventID(id)
	return seq
}

// tail prints events newer than the last one printed, oldest first, each
// poll. With --json it prints one JSON object per line.
func tail(ctx context.Context, c *cli.Context, cl *client.Client, f model.EventFilter) error {
	w := c.App.Writer
	print := func(evs []api.EventOut) error {
		if c.Bool("json") {
			for _, e := range evs {
				if err := printJSONLine(w, e); err != nil {
					return err
				}
			}
			return nil
		}
		var rows [][]string
		for _, e := range evs {
			rows = append(rows, eventRow(e))
		}
		if len(rows) == 0 {
			return nil
		}
		return tableNoHeader(w, rows)
	}
	var last uint64
	first := true
	if !c.Bool("json") {
		tableNoHeader(w, [][]string{eventHeader})
	}
	for {
		var fresh []api.EventOut
		cursor := ""
		limit := 100
		if first {
			limit = max(c.Int("last"), 1)
		}
	pages:
		for page := 0; page < 20; page++ {
			p, err := cl.ListEvents(ctx, f, cursor, limit)
			if err != nil {
				return err
			}
			for _, e := range p.Items {
				if eventSeq(e.ID) <= last {
					break pages
				}
				fresh = append(fresh, e)
			}
			if first || p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		slices.Reverse(fresh)
		if c.Int("last") == 0 && first {
			fresh = nil
		}
		if err := print(fresh); err != nil {
			return err
		}
		for _, e := range fresh {
			last = max(last, eventSeq(e.ID))
		}
		if first && last == 0 {
			// Nothing yet: start from whatever arrives next.
			if p, err := cl.ListEvents(ctx, f, "", 1); err == nil && len(p.Items) > 0 {
				last = eventSeq(p.Items[0].ID)
			}
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Duration("interval")):
		}
	}
}

func tableNoHeader(w io.Writer, rows [][]string) error {
	// Columns of a live tail cannot be aligned with rows not yet seen; pad
	// to fixed widths instead.
	widths := []int{24, 19, 12, 20, 13}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			if i < len(widths) {
				fmt.Fprintf(&b, "%-*s  ", widths[i], cell)
			} else {
				b.WriteString(cell)
			}
		}
		if _, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " ")); err != nil {
			return err
		}
	}
	return nil
}

func printJSONLine(w io.Writer, v any) error {
	return printJSON(compactWriter{w}, v)
}

// compactWriter turns the indented JSON of printJSON into one line.
type compactWriter struct{ w io.Writer }

func (c compactWriter) Write(b []byte) (int, error) {
	s := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\n", " ")), " ")
	_, err := io.WriteString(c.w, s+"\n")
	return len(b), err
}

// --- replay ---

func replayCommand() *cli.Command {
	waitFlag := &cli.BoolFlag{Name: "wait", Value: true, Usage: "wait for the replay to complete, showing progress (--wait=false returns at once)"}
	reasonFlag := &cli.StringFlag{Name: "reason", Usage: "why; recorded in the audit log"}
	return &cli.Command{
		Name:  "replay",
		Usage: "send events to their destinations again (same webhook-id)",
		Subcommands: []*cli.Command{
			{Name: "event", Usage: "replay one event", ArgsUsage: "EVENT_ID", Flags: commonFlags(
				&cli.StringFlag{Name: "destination", Usage: "only this one of the event's destinations"}, reasonFlag, waitFlag,
			), Action: action(runReplayEvent)},
			{Name: "bulk", Usage: "replay every event matching the filters, in the background", Flags: commonFlags(append(filterFlags(),
				reasonFlag, waitFlag, &cli.BoolFlag{Name: "all", Usage: "confirm replaying every event when no filter is given"},
			)...), Action: action(runReplayBulk)},
			{Name: "status", Aliases: []string{"get"}, Usage: "show a replay", ArgsUsage: "REPLAY_ID", Flags: commonFlags(waitFlag), Action: action(runReplayStatus)},
			{Name: "list", Usage: "list replays, newest first", Flags: commonFlags(&cli.IntFlag{Name: "limit", Value: 50}, &cli.StringFlag{Name: "cursor"}), Action: action(runReplayList)},
		},
	}
}

func runReplayEvent(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "EVENT_ID")
	if err != nil {
		return err
	}
	r, err := cl.ReplayEvent(ctx, id, api.EventReplayRequest{Destination: c.String("destination"), Reason: c.String("reason")})
	if err != nil {
		return err
	}
	return follow(ctx, c, cl, r)
}

func runReplayBulk(ctx context.Context, c *cli.Context, cl *client.Client) error {
	f, err := filterFrom(c)
	if err != nil {
		return err
	}
	r, err := cl.CreateReplay(ctx, api.ReplayRequest{EventFilter: f, Reason: c.String("reason"), All: c.Bool("all")})
	if err != nil {
		return err
	}
	return follow(ctx, c, cl, r)
}

func runReplayStatus(ctx context.Context, c *cli.Context, cl *client.Client) error {
	id, err := arg(c, 0, "REPLAY_ID")
	if err != nil {
		return err
	}
	r, err := cl.GetReplay(ctx, id)
	if err != nil {
		return err
	}
	if !c.IsSet("wait") {
		return output(c, r, func(w io.Writer) error { return kv(w, r) })
	}
	return follow(ctx, c, cl, r)
}

func runReplayList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	p, err := cl.ListReplays(ctx, c.String("cursor"), c.Int("limit"))
	if err != nil {
		return err
	}
	return output(c, p, func(w io.Writer) error {
		var rows [][]string
		for _, r := range p.Items {
			rows = append(rows, []string{r.ID, r.Status.String(), fmtTime(r.CreatedAt), strconv.Itoa(r.Total), strconv.Itoa(r.Succeeded), strconv.Itoa(r.Failed), r.RequestedBy, orDash(excerpt(r.Reason))})
		}
		return table(w, []string{"ID", "STATUS", "CREATED", "TOTAL", "SUCCEEDED", "FAILED", "BY", "REASON"}, rows)
	})
}

// follow waits for a replay with a progress bar (unless --wait=false or
// --json, which print the record as it is now or when done).
func follow(ctx context.Context, c *cli.Context, cl *client.Client, r model.Replay) error {
	if !c.Bool("wait") {
		ok(c, "replay %s %s (follow with: webhookops replay status %s --wait)", r.ID, r.Status, r.ID)
		return output(c, r, func(io.Writer) error { return nil })
	}
	var bar *progressbar.ProgressBar
	if !c.Bool("json") {
		fmt.Fprintf(c.App.ErrWriter, "replay %s %s\n", r.ID, r.Status)
	}
	for r.Status == model.ReplayQueued || r.Status == model.ReplayRunning {
		select {
		case <-ctx.Done():
			if bar != nil {
				bar.Exit()
			}
			fmt.Fprintf(c.App.ErrWriter, "\nstopped waiting; the replay goes on: webhookops replay status %s\n", r.ID)
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		var err error
		if r, err = cl.GetReplay(ctx, r.ID); err != nil {
			return err
		}
		if bar == nil && !c.Bool("json") && r.Status == model.ReplayRunning {
			// Only a replay that takes a while gets a bar.
			bar = progressbar.NewOptions(-1,
				progressbar.OptionSetWriter(c.App.ErrWriter),
				progressbar.OptionSetDescription("collecting events"),
				progressbar.OptionShowCount(),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
		if bar != nil {
			if r.ScanDone && bar.GetMax() != r.Total {
				bar.ChangeMax(max(r.Total, 1))
				bar.Describe("delivering")
			}
			bar.Set(r.Succeeded + r.Failed)
		}
	}
	if bar != nil {
		bar.Finish()
	}
	if err := output(c, r, func(w io.Writer) error {
		fmt.Fprintf(w, "replay %s %s: %d deliveries of %d events, %d succeeded, %d dead-lettered\n", r.ID, r.Status, r.Total, r.Events, r.Succeeded, r.Failed)
		if r.Error != "" {
			fmt.Fprintln(w, "error:", r.Error)
		}
		return nil
	}); err != nil {
		return err
	}
	if r.Status == model.ReplayFailed {
		return cli.Exit("", ExitFailure)
	}
	return nil
}

// --- dlq ---

func dlqCommand() *cli.Command {
	return &cli.Command{
		Name:  "dlq",
		Usage: "dead-letter queues",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list a destination's dead letters, oldest first", ArgsUsage: "DESTINATION", Flags: commonFlags(
				&cli.IntFlag{Name: "limit", Value: 50}, &cli.StringFlag{Name: "cursor"},
			), Action: action(runDLQList)},
			{Name: "redrive", Usage: "replay a destination's dead letters: all, or those matching", ArgsUsage: "DESTINATION", Flags: commonFlags(
				&cli.StringSliceFlag{Name: "event", Usage: "only this event id; repeat for more"},
				&cli.StringFlag{Name: "event-type"},
				&cli.StringFlag{Name: "since"},
				&cli.StringFlag{Name: "until"},
				&cli.StringFlag{Name: "reason"},
				&cli.BoolFlag{Name: "wait", Value: true},
			), Action: action(runDLQRedrive)},
		},
	}
}

func runDLQList(ctx context.Context, c *cli.Context, cl *client.Client) error {
	dest, err := arg(c, 0, "DESTINATION")
	if err != nil {
		return err
	}
	p, err := cl.ListDeadLetters(ctx, dest, c.String("cursor"), c.Int("limit"))
	if err != nil {
		return err
	}
	return output(c, p, func(w io.Writer) error {
		var rows [][]string
		for _, d := range p.Items {
			last := "-"
			if d.Last != nil {
				last = excerpt(strings.TrimSpace(fmt.Sprintf("%s %s", codeString(d.Last.StatusCode), d.Last.Error)))
			}
			rows = append(rows, []string{d.EventID, fmtTime(d.ReceivedAt), d.Source, orDash(d.EventType), strconv.Itoa(d.Attempts), last})
		}
		if err := table(w, []string{"EVENT", "RECEIVED", "SOURCE", "TYPE", "ATTEMPTS", "LAST"}, rows); err != nil {
			return err
		}
		if p.NextCursor != "" {
			fmt.Fprintf(w, "more: --cursor %s\n", p.NextCursor)
		}
		return nil
	})
}

func runDLQRedrive(ctx context.Context, c *cli.Context, cl *client.Client) error {
	dest, err := arg(c, 0, "DESTINATION")
	if err != nil {
		return err
	}
	req := api.RedriveRequest{EventIDs: c.StringSlice("event"), EventType: c.String("event-type"), Reason: c.String("reason")}
	if req.Since, err = parseTime("since", c.String("since")); err != nil {
		return err
	}
	if req.Until, err = parseTime("until", c.String("until")); err != nil {
		return err
	}
	r, err := cl.Redrive(ctx, dest, req)
	if err != nil {
		return err
	}
	return follow(ctx, c, cl, r)
}

func codeString(c int) string {
	if c == 0 {
		return ""
	}
	return strconv.Itoa(c)
}

// --- audit ---

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "read the audit log, newest first",
		Flags: commonFlags(
			&cli.StringFlag{Name: "action", Usage: "an action, or a prefix ending in . or * (delivery.*)"},
			&cli.StringFlag{Name: "object-type"},
			&cli.StringFlag{Name: "object-id"},
			&cli.StringFlag{Name: "replay"},
			&cli.StringFlag{Name: "actor"},
			&cli.StringFlag{Name: "since"},
			&cli.StringFlag{Name: "until"},
			&cli.IntFlag{Name: "limit", Value: 100},
			&cli.StringFlag{Name: "cursor"},
		),
		Action: action(runAudit),
	}
}

func runAudit(ctx context.Context, c *cli.Context, cl *client.Client) error {
	f := api.AuditFilter{Action: c.String("action"), ObjectType: c.String("object-type"), ObjectID: c.String("object-id"), ReplayID: c.String("replay"), Actor: c.String("actor")}
	var err error
	if f.Since, err = parseTime("since", c.String("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", c.String("until")); err != nil {
		return err
	}
	p, err := cl.ListAudit(ctx, f, c.String("cursor"), c.Int("limit"))
	if err != nil {
		return err
	}
	return output(c, p, func(w io.Writer) error {
		var rows [][]string
		for _, e := range p.Items {
			var d []string
			for _, k := range slices.Sorted(maps.Keys(e.Detail)) {
				d = append(d, k+"="+e.Detail[k])
			}
			rows = append(rows, []string{fmtTime(e.At), e.Action, e.ObjectType + " " + e.ObjectID, orDash(e.Actor), orDash(e.ReplayID), excerptN(strings.Join(d, " "), 100)})
		}
		if err := table(w, []string{"AT", "ACTION", "OBJECT", "ACTOR", "REPLAY", "DETAIL"}, rows); err != nil {
			return err
		}
		if p.NextCursor != "" {
			fmt.Fprintf(w, "more: --cursor %s\n", p.NextCursor)
		}
		return nil
	})
}

func excerptN(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
