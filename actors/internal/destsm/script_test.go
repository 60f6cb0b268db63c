package destsm

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with what the machine does now (review the diff!)")

// TestScripts runs testdata/*.txt. A script is blocks of one command line,
// a "----" line and the effects expected, one per line ("ok" for none),
// separated by blank lines; "#" starts a comment line. Commands:
//
//	new [dest options] [window=N] [pipeline=N] [durable-slots] [next=N] [depth=N] [dead=N] [absent]
//	                        (a new machine; the clock goes back to 00:00:00)
//	enqueue seq=N [part=N] [outbox] [recovered] [replay=ID] [prior=STATUS/ATTEMPTS] [event]
//	                        (event: it carries its payload; attempts show +event)
//	loaded [qQSEQ:eSEQ[:STATUS/ATTEMPTS[/next=+DUR]]]...
//	done attempt=N [ok] [status=CODE] [retry-after=DUR] [err=TEXT]
//	unreadable attempt=N
//	skipped attempt=N
//	committed write=N [err=TEXT]
//	tick [at=+DUR]          (default: the armed timer)
//	advance DUR             (moves the clock, feeds nothing)
//	reconfigure [dest options] [absent]
//	idle
//	expired dead=N
//	stats
//
// Dest options: ordered, parallel, inflight=N, attempts=N, base=DUR,
// max=DUR, rate=PER_SECOND, paused. Times print as hh:mm:ss.000 from
// 00:00:00. Rand is fixed at the top of its range, so backoff is exact.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

var scriptEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type script struct {
	t   *testing.T
	m   *Machine
	now time.Time
}

func runScript(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &script{t: t, now: scriptEpoch}
	var out strings.Builder
	lines := strings.Split(string(raw), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmd, lineNo := line, i+1
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("%s:%d: command without ----", path, lineNo)
		}
		var want []string
		for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" {
			i++
			want = append(want, lines[i])
		}
		got := s.run(cmd)
		if len(got) == 0 {
			got = []string{"ok"}
		}
		out.WriteString(cmd + "\n----\n" + strings.Join(got, "\n") + "\n")
		if !*rewrite && strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\n got:\n\t%s\nwant:\n\t%s", path, lineNo, cmd, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// args splits "k=v" and bare words.
type args map[string]string

func parseArgs(fields []string) args {
	a := args{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		a[k] = v
	}
	return a
}

func (a args) has(k string) bool { _, ok := a[k]; return ok }

func (s *script) num(a args, k string) uint64 {
	v, err := strconv.ParseUint(a[k], 10, 64)
	if err != nil {
		s.t.Fatalf("%s=%q: %v", k, a[k], err)
	}
	return v
}

func (s *script) dur(v string) time.Duration {
	d, err := time.ParseDuration(strings.TrimPrefix(v, "+"))
	if err != nil {
		s.t.Fatalf("duration %q: %v", v, err)
	}
	return d
}

func (s *script) dest(a args, d model.Destination) model.Destination {
	if a.has("ordered") {
		d.Ordering = model.OrderingOrdered
	}
	if a.has("parallel") {
		d.Ordering = model.OrderingParallel
	}
	if a.has("inflight") {
		d.MaxInFlight = int(s.num(a, "inflight"))
	}
	if a.has("attempts") {
		d.MaxAttempts = int(s.num(a, "attempts"))
	}
	if a.has("base") {
		d.BackoffBase = model.Duration(s.dur(a["base"]))
	}
	if a.has("max") {
		d.BackoffMax = model.Duration(s.dur(a["max"]))
	}
	if a.has("rate") {
		r, err := strconv.ParseFloat(a["rate"], 64)
		if err != nil {
			s.t.Fatal(err)
		}
		d.RateLimit = r
	}
	d.Paused = a.has("paused")
	return d
}

// record parses STATUS/ATTEMPTS[/next=+DUR] into a delivery record.
func (s *script) record(seq uint64, v string) *model.Delivery {
	parts := strings.Split(v, "/")
	rec := &model.Delivery{Destination: "app", EventID: fmt.Sprintf("e%d", seq), Status: parts[0]}
	if len(parts) > 1 {
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			s.t.Fatal(err)
		}
		for i := 1; i <= n; i++ {
			rec.Attempts = append(rec.Attempts, model.Attempt{N: i, At: scriptEpoch, StatusCode: 500})
		}
	}
	if len(parts) > 2 {
		rec.NextAt = scriptEpoch.Add(s.dur(strings.TrimPrefix(parts[2], "next=")))
	}
	return rec
}

func (s *script) run(cmd string) []string {
	fields := strings.Fields(cmd)
	a := parseArgs(fields[1:])
	var msg Msg
	switch fields[0] {
	case "new":
		st := State{Dest: s.dest(a, model.Destination{}), Exists: !a.has("absent"), NextQSeq: 1}
		if a.has("next") {
			st.NextQSeq = s.num(a, "next")
		}
		if a.has("depth") {
			st.Depth = int64(s.num(a, "depth"))
		}
		if a.has("dead") {
			st.Dead = int64(s.num(a, "dead"))
		}
		window, pipeline := 4, 0
		if a.has("window") {
			window = int(s.num(a, "window"))
		}
		if a.has("pipeline") {
			pipeline = int(s.num(a, "pipeline"))
		}
		s.m = New(Params{Slug: "app", Window: window, Pipeline: pipeline, DurableSlots: a.has("durable-slots"), Rand: func(n int64) int64 { return n - 1 }}, st)
		s.now = scriptEpoch
		return nil
	case "enqueue":
		seq := s.num(a, "seq")
		e := Enqueue{Seq: seq, EventID: fmt.Sprintf("e%d", seq), FromOutbox: a.has("outbox"), Recovered: a.has("recovered"), ReplayID: a["replay"]}
		if a.has("event") {
			e.Payload = e.EventID
		}
		if a.has("part") {
			e.Part = uint16(s.num(a, "part"))
		}
		if a.has("prior") {
			e.Prior = s.record(seq, a["prior"])
		}
		msg = e
	case "loaded":
		var l Loaded
		for _, f := range fields[1:] {
			parts := strings.SplitN(f, ":", 3)
			q, _ := strconv.ParseUint(strings.TrimPrefix(parts[0], "q"), 10, 64)
			seq, _ := strconv.ParseUint(strings.TrimPrefix(parts[1], "e"), 10, 64)
			e := Entry{QSeq: q, Seq: seq, EventID: fmt.Sprintf("e%d", seq)}
			if len(parts) > 2 {
				e.Rec = s.record(seq, parts[2])
			}
			l.Entries = append(l.Entries, e)
		}
		msg = l
	case "done":
		res := Result{Success: a.has("ok"), Err: a["err"], Duration: 1500 * time.Microsecond}
		if a.has("status") {
			res.StatusCode = int(s.num(a, "status"))
		}
		if a.has("retry-after") {
			res.RetryAfter = s.dur(a["retry-after"])
		}
		msg = AttemptDone{Attempt: s.num(a, "attempt"), Started: s.now, Result: res}
	case "skipped":
		msg = Skipped{Attempt: s.num(a, "attempt")}
	case "unreadable":
		msg = Unreadable{Attempt: s.num(a, "attempt"), Err: "wal: corrupt record"}
	case "committed":
		c := Committed{Write: s.num(a, "write")}
		if a.has("err") {
			c.Err = errors.New(a["err"])
		}
		msg = c
	case "tick":
		at := s.m.timerAt
		if a.has("at") {
			at = scriptEpoch.Add(s.dur(a["at"]))
		}
		if at.After(s.now) {
			s.now = at
		}
		msg = Tick{At: at}
	case "advance":
		s.now = s.now.Add(s.dur(fields[1]))
		return []string{"now " + clock(s.now)}
	case "reconfigure":
		msg = Reconfigure{Dest: s.dest(a, model.Destination{}), Exists: !a.has("absent")}
	case "idle":
		msg = Idle{}
	case "expired":
		msg = DeadExpired{N: int64(s.num(a, "dead"))}
	case "stats":
		st := s.m.Stats()
		head := "none"
		if st.HasHead {
			head = fmt.Sprintf("e%d", st.HeadSeq)
		}
		return []string{fmt.Sprintf("depth=%d dead=%d inflight=%d failures=%d breaker=%s head=%s",
			st.Depth, st.Dead, st.InFlight, st.ConsecutiveFailures, st.Breaker, head)}
	default:
		s.t.Fatalf("unknown command %q", cmd)
	}
	var out []string
	for _, e := range s.m.Step(s.now, msg) {
		out = append(out, e.String())
	}
	return out
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }
