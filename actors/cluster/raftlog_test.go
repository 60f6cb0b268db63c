package cluster

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	dblog "github.com/lni/dragonboat/v4/logger"
)

func TestRepeats(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRepeats(time.Minute)
	for _, step := range []struct {
		format string
		at     time.Duration
		emit   bool
		held   int
	}{
		{"dial %s failed", 0, true, 0},
		{"dial %s failed", time.Second, false, 0},
		{"other %d", 2 * time.Second, true, 0},
		{"dial %s failed", 30 * time.Second, false, 0},
		{"dial %s failed", 59 * time.Second, false, 0},
		{"dial %s failed", time.Minute, true, 3},
		{"dial %s failed", time.Minute + time.Second, false, 0},
		{"dial %s failed", 3 * time.Minute, true, 1},
		{"dial %s failed", 5 * time.Minute, true, 0},
	} {
		emit, held := r.allow(step.format, t0.Add(step.at))
		if emit != step.emit || held != step.held {
			t.Fatalf("%q at %v: (%v, %d), want (%v, %d)", step.format, step.at, emit, held, step.emit, step.held)
		}
	}
}

func TestRepeatsForgetsPastItsBound(t *testing.T) {
	r := newRepeats(time.Minute)
	now := time.Unix(1000, 0)
	for i := range 3 * maxFormats {
		r.allow(strings.Repeat("x", i), now)
	}
	if len(r.last) > maxFormats || len(r.held) > maxFormats {
		t.Fatalf("remembers %d formats, %d held; bound %d", len(r.last), len(r.held), maxFormats)
	}
}

// dragonboat's lines go to the member's logger (JSON here, as with
// --log-format json), tagged, with a failing peer's repeats held back.
func TestDragonboatLogsGoToTheMembersLogger(t *testing.T) {
	var buf bytes.Buffer
	routeRaftLogs()
	prev := raftLogTo.Swap(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer raftLogTo.Store(prev)

	tr := dblog.GetLogger("transport")
	for range 50 {
		tr.Warningf("breaker %s to %s failed, connect and process failed: %s", "127.0.0.1:1", "127.0.0.1:2", "refused")
	}
	tr.Errorf("Nodehost %s failed to get a connection to %s, %v", "127.0.0.1:1", "127.0.0.1:2", "refused")
	tr.Infof("below the level: %d", 1)
	dblog.GetLogger("raft").Warningf("election step %d", 1) // raft: errors only

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 (one per format at its level):\n%s", len(lines), buf.String())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if rec["dragonboat"] != "transport" {
			t.Errorf("line not tagged: %q", line)
		}
	}
	if !strings.Contains(lines[0], "breaker 127.0.0.1:1 to 127.0.0.1:2 failed") {
		t.Errorf("first line: %q", lines[0])
	}
}
