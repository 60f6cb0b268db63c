package refusals

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookops/webhookops/wal"
)

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sig := func(src, reason, addr string, i int) Rejection {
		return Rejection{Action: "event.signature_rejected", ObjectType: "source", ObjectID: src, Reason: reason,
			RemoteAddr: addr, At: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	cases := []struct {
		name string
		add  []Rejection
		want []string // "object/reason count addrs"
	}{
		{"one", []Rejection{sig("gh", "signature_mismatch", "1.1.1.1:1", 0)},
			[]string{"gh/signature_mismatch 1 1.1.1.1:1"}},
		{"many of one key make one row", func() (rs []Rejection) {
			for i := range 1000 {
				rs = append(rs, sig("gh", "signature_mismatch", "1.1.1.1:1", i))
			}
			return
		}(), []string{"gh/signature_mismatch 1000 1.1.1.1:1"}},
		{"reasons and sources are apart", []Rejection{
			sig("gh", "signature_mismatch", "a:1", 0), sig("gh", "missing_signature", "a:1", 1),
			sig("shop", "signature_mismatch", "b:1", 2), sig("gh", "signature_mismatch", "c:1", 3)},
			[]string{"gh/missing_signature 1 a:1", "gh/signature_mismatch 2 a:1, c:1", "shop/signature_mismatch 1 b:1"}},
		{"addresses are capped", func() (rs []Rejection) {
			for i := range 10 {
				rs = append(rs, sig("gh", "signature_mismatch", fmt.Sprintf("10.0.0.%d:1", i), i))
			}
			return
		}(), []string{"gh/signature_mismatch 10 10.0.0.0:1, 10.0.0.1:1, 10.0.0.2:1, 10.0.0.3:1, ..."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow()
			for _, r := range tc.add {
				w.add(r)
			}
			var got []string
			for _, e := range w.rows() {
				got = append(got, fmt.Sprintf("%s/%s %s %s", e.ObjectID, e.Detail["reason"], e.Detail["count"], e.Detail["remote_addrs"]))
				if e.Action != "event.signature_rejected" || e.ObjectType != "source" || e.Detail["first_at"] == "" || e.Detail["last_at"] == "" {
					t.Fatalf("row %+v", e)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// An attacker inventing agent ids cannot make more than MaxKeys rows
// plus one per reason in an interval; every refusal is still counted.
func TestWindowCapsObjects(t *testing.T) {
	w := newWindow()
	const ids = 10_000
	for i := range ids {
		w.add(Rejection{Action: "agent.rejected", ObjectType: "agent", ObjectID: "id-" + strconv.Itoa(i) + strings.Repeat("x", 1000),
			Reason: "bad_proof", Message: strings.Repeat("m", 5000), RemoteAddr: "9.9.9.9:9", At: time.Unix(int64(i), 0)})
	}
	rows := w.rows()
	if len(rows) != MaxKeys+1 {
		t.Fatalf("%d rows, want %d", len(rows), MaxKeys+1)
	}
	total := 0
	for _, r := range rows {
		n, _ := strconv.Atoi(r.Detail["count"])
		total += n
		if len(r.ObjectID) > MaxText || len(r.Detail["message"]) > MaxText {
			t.Fatalf("row not clipped: %d, %d bytes", len(r.ObjectID), len(r.Detail["message"]))
		}
	}
	if total != ids || rows[0].ObjectID != "*" {
		t.Fatalf("counted %d of %d; first row %q", total, ids, rows[0].ObjectID)
	}
}

// Through a real store: a flood of refusals in one interval is one row.
func TestFloodWritesOneRow(t *testing.T) {
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tl := Start(db, time.Hour, log) // one interval: the rows come from Close
	for range 5000 {
		tl.Add(Rejection{Action: "event.signature_rejected", ObjectType: "source", ObjectID: "gh", Reason: "signature_mismatch", RemoteAddr: "1.2.3.4:5"})
	}
	tl.Add(Rejection{Action: "agent.rejected", ObjectType: "agent", ObjectID: "x", Reason: "auth failed", RemoteAddr: "1.2.3.4:6"})
	tl.Close() // writes what is tallied
	// The log says so once per interval, not once per refusal.
	if n := strings.Count(logged.String(), "\n"); n != 1 ||
		!strings.Contains(logged.String(), "event.signature_rejected=5000") || !strings.Contains(logged.String(), "agent.rejected=1") {
		t.Fatalf("want one log line counting the interval's refusals by action:\n%s", logged.String())
	}
	rows, _, err := db.ListAudit(0, 100, func(e *wal.AuditEntry) bool { return e.Action == "event.signature_rejected" })
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range rows {
		k, _ := strconv.Atoi(r.Detail["count"])
		total += k
	}
	if total != 5000 || len(rows) != 1 {
		t.Fatalf("%d rows counting %d refusals, want 1 counting 5000", len(rows), total)
	}
	// They are refusal rows, kept for the refusal retention.
	if n, err := db.ExpireRefusals(time.Now().Add(time.Hour), 100); err != nil || n != 2 {
		t.Fatalf("refusal retention expired %d rows (%v), want both", n, err)
	}
}

// TestWriteBound builds the worst interval a hostile client can
// cause (every cap reached, every field at its clip length) and measures
// the audit bytes it writes: the figure behind "how many bytes per second
// can refusals make the node write" (issue 9). Rows are encoded as the
// store encodes them (encoding/json's format), plus the 9-byte key and a
// few bytes of batch framing each.
func TestWriteBound(t *testing.T) {
	w := newWindow()
	long := strings.Repeat("\x01", 1000) // escapes to 6 bytes in JSON
	actions := []string{"event.signature_rejected", "agent.rejected", "auth.rejected"}
	for i := 0; i < 3000; i++ {
		w.add(Rejection{Action: actions[i%3], ObjectType: "source", ObjectID: strconv.Itoa(i) + long,
			Reason: strconv.Itoa(i%50) + long, Message: long, RemoteAddr: strconv.Itoa(i) + long,
			At: time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)})
	}
	rows := w.rows()
	bytes := 0
	for _, r := range rows {
		r.Seq = 1 << 62
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		bytes += len(raw) + 9 + 8
	}
	perSec := float64(bytes) / DefaultInterval.Seconds()
	t.Logf("worst interval: %d rows, %d bytes; at one interval per %v: %.0f bytes/s", len(rows), bytes, DefaultInterval, perSec)
	if len(rows) > MaxKeys+MaxOverflow+len(actions) {
		t.Fatalf("%d rows in one interval", len(rows))
	}
	if perSec > 16<<10 {
		t.Fatalf("%.0f bytes/s of audit rows, over the 16 KiB/s bound", perSec)
	}
}

// Below the store's free-space floor refusal rows are not written: the
// room left is for deliveries and the node's own audit. One line says so
// (not one per interval), the counts are still logged, and rows are
// written again once space returns.
func TestBelowTheFloorRowsAreDropped(t *testing.T) {
	var free atomic.Uint64
	free.Store(4 << 30)
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 4, MinFreeBytes: 1 << 30, BallastBytes: -1,
		SpaceInterval: 5 * time.Millisecond, FreeSpace: func(string) (uint64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Intervals end when the test says (flush); the loop writes nothing
	// before Close, so the test alone touches the log.
	var logged strings.Builder
	tl := Start(db, time.Hour, slog.New(slog.NewTextHandler(&logged, nil)))
	defer tl.Close()
	rows := func() int {
		t.Helper()
		rs, _, err := db.ListAudit(0, 100, func(e *wal.AuditEntry) bool { return e.Action == "event.signature_rejected" })
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	interval := func(src string) {
		for range 100 {
			tl.Add(Rejection{Action: "event.signature_rejected", ObjectType: "source", ObjectID: src, Reason: "signature_mismatch"})
		}
		tl.flush(true)
	}
	waitAccepting := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); (db.Accepting() == nil) != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("store accepting: %v, want %v", db.Accepting(), want)
			}
		}
	}

	interval("before")
	if n := rows(); n != 1 {
		t.Fatalf("%d rows above the floor, want 1", n)
	}
	free.Store(1 << 20)
	waitAccepting(false)
	for range 5 {
		interval("below")
	}
	if n := rows(); n != 1 {
		t.Fatalf("%d rows after 5 intervals below the floor, want the 1 from before", n)
	}
	out := logged.String()
	if c := strings.Count(out, "not writing refusal rows"); c != 1 {
		t.Fatalf("%d lines about dropping rows, want 1:\n%s", c, out)
	}
	if c := strings.Count(out, "event.signature_rejected=100"); c != 6 {
		t.Fatalf("counts logged for %d intervals, want 6:\n%s", c, out)
	}
	free.Store(4 << 30)
	waitAccepting(true)
	interval("after")
	if n := rows(); n != 2 {
		t.Fatalf("%d rows once space returned, want 2", n)
	}
	if !strings.Contains(logged.String(), "writing refusal rows again") {
		t.Fatalf("resuming not logged:\n%s", logged.String())
	}
}

// TestCountsOnMetrics: every refusal is counted by action for /metrics,
// whether or not its audit row is written, so an operator sees refused
// agents and tokens, not only bad signatures; label values stay bounded.
func TestCountsOnMetrics(t *testing.T) {
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tl := Start(db, time.Hour, slog.New(slog.DiscardHandler))
	for range 3 {
		tl.Add(Rejection{Action: "agent.rejected", ObjectType: "agent", ObjectID: "x", Reason: "auth failed"})
	}
	tl.Add(Rejection{Action: "auth.rejected", ObjectType: "token", ObjectID: "whops_ab", Reason: "unknown"})
	for i := range maxCountedActions + 10 {
		tl.Add(Rejection{Action: "made.up." + strconv.Itoa(i)})
	}
	tl.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(tl)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "webhookops_refusals_total" {
		t.Fatalf("gathered %v, %v", families, err)
	}
	got := map[string]float64{}
	for _, m := range families[0].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if got["agent.rejected"] != 3 || got["auth.rejected"] != 1 || len(got) != maxCountedActions {
		t.Fatalf("counts %v: want agent.rejected 3, auth.rejected 1 and %d actions at most", got, maxCountedActions)
	}
}
