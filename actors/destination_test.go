package actors

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

var errInjected = errors.New("injected: storage fails")

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// count returns how many times key is in keys.
func count(keys []string, key string) int {
	n := 0
	for _, k := range keys {
		if k == key {
			n++
		}
	}
	return n
}

// TestFailedWriteNeverLetsOrderedRunAhead (defect 1): when the write that
// records an ordered destination's outcome fails, the destination must not
// go on as if it were durable. At most the pipeline's events go out past
// the last durable outcome; then the actor fails, its supervisor restarts
// it, and it reloads the queue from disk: the events whose outcome was lost
// are sent again, in order (same webhook-id), and the rest follow once the
// store takes writes again.
func TestFailedWriteNeverLetsOrderedRunAhead(t *testing.T) {
	for _, pipeline := range []int{1, 2} {
		t.Run(fmt.Sprint("pipeline=", pipeline), func(t *testing.T) { testFailedWrite(t, pipeline) })
	}
}

func testFailedWrite(t *testing.T, pipeline int) {
	keys := []string{"a", "b", "c", "d"}
	var fault atomic.Bool
	s, srv, entered, release := newHoldingSink(t, "a")
	tn := startNodeWith(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{Ordering: model.OrderingOrdered}), func(c *Config) {
		c.OrderedPipeline = pipeline
	})
	tn.db.SetCommitFault(func() error {
		if fault.Load() {
			return errInjected
		}
		return nil
	})
	ids := map[string]string{}
	for _, k := range keys {
		ids[k] = tn.ingest(t, "src", k, k).EventID
	}
	<-entered
	fault.Store(true) // from a's outcome on, nothing becomes durable
	close(release)

	// beyond reports an event sent past what the pipeline allows.
	beyond := func(got []string) string {
		for _, k := range keys[pipeline:] {
			if count(got, k) > 0 {
				return k
			}
		}
		return ""
	}
	eventually(t, "a sent again after restarts", func() bool {
		got := s.received()
		return count(got, "a") >= 3 || beyond(got) != ""
	})
	if got := s.received(); beyond(got) != "" {
		t.Fatalf("%s was sent while %d outcome(s) before it were not durable: %v", beyond(got), pipeline, got)
	}
	if d, err := tn.db.GetDelivery("app", mustSeq(t, ids["a"])); err == nil && d.Status != wal.StatusPending {
		t.Fatalf("a's record says %s, but every write failed", d.Status)
	}

	fault.Store(false)
	for _, k := range keys {
		waitStatus(t, tn, ids[k], wal.StatusDelivered)
	}
	got := s.received()
	if order := firstArrivals(got); fmt.Sprint(order) != fmt.Sprint(keys) {
		t.Fatalf("first arrivals %v, want %v (all: %v)", order, keys, got)
	}
	// Every re-send follows a restart that went back to a: the sink never
	// sees a key again after a later one has arrived, except from a.
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] && got[i] != "a" {
			t.Fatalf("restart did not go back to the oldest non-durable outcome: %v", got)
		}
	}
	if s.ids["a"] != ids["a"] {
		t.Fatalf("resent a with webhook-id %q, want %q", s.ids["a"], ids["a"])
	}
	eventually(t, "the queue depth gauge to reach 0", func() bool { depth, _ := tn.QueueCounts("app"); return depth == 0 })
}

// newHoldingSink is a sink answering 200 that holds the first request for
// key until release is closed; entered is closed when that request comes.
func newHoldingSink(t *testing.T, key string) (s *sink, srv *httptest.Server, entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	s, srv = newGatedSink(t, func(k string) {
		if k == key && !first.Swap(true) {
			close(entered)
			<-release
		}
	}, func(string, int) int { return 200 })
	return s, srv, entered, release
}

// firstArrivals is keys in the order each first arrived.
func firstArrivals(got []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range got {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func mustSeq(t *testing.T, id string) uint64 {
	t.Helper()
	_, seq, err := wal.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestPanicWhileEnqueueingLosesNothing (defect 2): a destination actor that
// fails while it handles an event's enqueue must not lose it. On restart it
// takes what the outbox still holds for it, oldest first, before anything
// newer in its mailbox, so an ordered destination still sees a b c, in
// order, once each, with no node restart.
func TestPanicWhileEnqueueingLosesNothing(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	var fired atomic.Bool
	tn := startNodeWith(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{Ordering: model.OrderingOrdered}), func(c *Config) {
		c.hooks.enqueue = func(_ string, ev *wal.Event) {
			if string(ev.Body) == "b" && !fired.Swap(true) {
				panic("injected: fails while enqueueing b")
			}
		}
	})
	a := tn.ingest(t, "src", "a", "a").EventID
	waitStatus(t, tn, a, wal.StatusDelivered)
	b := tn.ingest(t, "src", "b", "b").EventID
	c := tn.ingest(t, "src", "c", "c").EventID
	waitStatus(t, tn, b, wal.StatusDelivered)
	waitStatus(t, tn, c, wal.StatusDelivered)
	time.Sleep(50 * time.Millisecond) // a duplicate would arrive now
	if got := fmt.Sprint(s.received()); got != "[a b c]" {
		t.Fatalf("sink saw %s, want [a b c]", got)
	}
	if !fired.Load() {
		t.Fatal("the fault never fired")
	}
	left := 0
	for p := 0; p < tn.db.Partitions(); p++ {
		tn.db.ScanOutbox(uint16(p), func(wal.OutboxEntry) { left++ })
	}
	if left != 0 {
		t.Fatalf("%d outbox entries left", left)
	}
	if depth, err := tn.db.QueueDepth("app"); depth != 0 || err != nil {
		t.Fatalf("queue holds %d (%v), want 0: an event was queued twice", depth, err)
	}
}

// TestRetentionSweepRunsOnTheNodeClock (defect 5): the hourly retention
// sweep follows the injected Clock, and a dead letter it removes leaves the
// destination's count.
func TestRetentionSweepRunsOnTheNodeClock(t *testing.T) {
	dir := t.TempDir()
	db, err := wal.Open(dir, wal.Config{Partitions: 8, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, at time.Time) *wal.Event {
		e := &wal.Event{Partition: db.EventPartition("src", key), Seq: db.NextSeq(), Source: "src", IdemKey: key, ReceivedAt: at, Destinations: []string{"app"}}
		b := db.NewBatch()
		b.PutEvent(e)
		b.PutDelivery(e.Seq, &wal.Delivery{Destination: "app", EventID: e.ID(), Status: wal.StatusDead})
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gone := func(e *wal.Event) bool {
		_, err := db.GetEvent(e.Partition, e.Seq)
		return errors.Is(err, wal.ErrNotFound)
	}
	old := put("old", testStart.Add(-3*time.Hour))
	// Audit entries have their own retention (issue 9 item 2).
	b := db.NewBatch()
	b.Audit(wal.AuditEntry{At: testStart.Add(-5 * time.Hour), Action: "test.old", ObjectType: "t", ObjectID: "old"})
	b.Audit(wal.AuditEntry{At: testStart.Add(-3 * time.Hour), Action: "test.kept", ObjectType: "t", ObjectID: "kept"})
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	// Refusal rows have a shorter one of their own.
	for _, r := range []wal.AuditEntry{
		{At: testStart.Add(-3 * time.Hour), Action: "agent.rejected", ObjectType: "t", ObjectID: "refused-old"},
		{At: testStart.Add(-time.Hour), Action: "agent.rejected", ObjectType: "t", ObjectID: "refused-kept"},
	} {
		b := db.NewRefusalBatch()
		b.Audit(r)
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	clock := NewManualClock(testStart)
	tn := startNodeWith(t, dir, clock, Change{}, func(c *Config) {
		c.DedupeWindow, c.Retention, c.AuditRetention, c.RefusalRetention = time.Hour, 2*time.Hour, 4*time.Hour, 2*time.Hour
	})
	db = tn.db
	audited := func() (ids []string) {
		rows, _, err := db.ListAudit(0, 100, func(e *wal.AuditEntry) bool { return e.ObjectType == "t" })
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			ids = append(ids, r.ObjectID)
		}
		return ids
	}
	if _, dead := tn.QueueCounts("app"); dead != 1 {
		t.Fatalf("dead letters counted at start: %d, want 1", dead)
	}
	// advance moves the clock once the sweep's timer is armed again.
	advance := func(d time.Duration) {
		eventually(t, "the sweep timer", func() bool { return len(clock.Timers()) > 0 })
		clock.Advance(d)
	}
	advance(sweepEvery)
	eventually(t, "the first sweep", func() bool { return gone(old) })
	eventually(t, "the audit sweep", func() bool { return slices.Equal(audited(), []string{"refused-kept", "kept"}) })
	eventually(t, "the dead-letter count", func() bool { _, dead := tn.QueueCounts("app"); return dead == 0 })

	// The next retention sweep comes an hour after the first, by the clock.
	second := put("second", testStart.Add(-3*time.Hour))
	for i := 0; i < 30; i++ {
		advance(sweepEvery)
	}
	time.Sleep(20 * time.Millisecond)
	if gone(second) {
		t.Fatal("retention ran again within the hour")
	}
	for i := 0; i < 31; i++ {
		advance(sweepEvery)
	}
	eventually(t, "the hourly sweep", func() bool { return gone(second) })
}

// Refusal rows are never kept longer than the audit log: a refusal
// retention past audit's is cut to it, and so is the 7-day default.
func TestRefusalRetentionIsAtMostAudits(t *testing.T) {
	for _, tc := range []struct{ audit, refusal, want time.Duration }{
		{0, 0, 7 * 24 * time.Hour},
		{90 * 24 * time.Hour, time.Hour, time.Hour},
		{24 * time.Hour, 0, 24 * time.Hour},
		{24 * time.Hour, 30 * 24 * time.Hour, 24 * time.Hour},
	} {
		tn := startNodeWith(t, t.TempDir(), nil, Change{}, func(c *Config) { c.AuditRetention, c.RefusalRetention = tc.audit, tc.refusal })
		if got := tn.cfg.RefusalRetention; got != tc.want {
			t.Errorf("audit %v, refusal %v: refusal rows kept %v, want %v", tc.audit, tc.refusal, got, tc.want)
		}
	}
}
