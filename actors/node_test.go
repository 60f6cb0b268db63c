package actors

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/actors/leaktest"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

type testNode struct {
	*Node
	db    *wal.DB
	clock *ManualClock
}

func startNode(t testing.TB, dir string, clock *ManualClock, change Change) *testNode {
	t.Helper()
	return startNodeWith(t, dir, clock, change, nil)
}

// startNodeWith is startNode with tweak applied to the node's Config.
func startNodeWith(t testing.TB, dir string, clock *ManualClock, change Change, tweak func(*Config)) *testNode {
	t.Helper()
	db, err := wal.Open(dir, wal.Config{Partitions: 8, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		DB:        db,
		Deliverer: delivery.NewClient(delivery.Options{}),
		Shards:    4,
		// Full jitter at its maximum, so schedules are exact.
		Rand: func(n int64) int64 { return n - 1 },
	}
	if clock != nil {
		cfg.Clock = clock
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if err := n.Apply(change); err != nil {
		n.Close()
		db.Close()
		t.Fatal(err)
	}
	tn := &testNode{Node: n, db: db, clock: clock}
	t.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) stop() {
	tn.Node.Close()
	tn.db.Close()
}

func (tn *testNode) ingest(t testing.TB, source, key string, body string) IngestResult {
	t.Helper()
	src, ok := tn.Source(source)
	if !ok {
		t.Fatalf("no source %q", source)
	}
	res, err := tn.Ingest(context.Background(), IngestRequest{
		Source: source, IdemKey: key, Headers: [][2]string{{"X-Key", key}}, Body: []byte(body),
	}, src)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sink records what it receives and answers with a per-key script.
type sink struct {
	mu     sync.Mutex
	got    []string // X-Key of each request, in arrival order
	ids    map[string]string
	script func(key string, n int) int // n: how many times this key was seen before
	seen   map[string]int
	hit    chan string
}

func newSink(t *testing.T, script func(key string, n int) int) (*sink, *httptest.Server) {
	return newGatedSink(t, nil, script)
}

// newGatedSink is newSink whose requests first pass gate (which may block),
// outside the sink's lock.
func newGatedSink(t *testing.T, gate func(key string), script func(key string, n int) int) (*sink, *httptest.Server) {
	s := &sink{script: script, seen: map[string]int{}, ids: map[string]string{}, hit: make(chan string, 10000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		key := r.Header.Get("X-Key")
		if gate != nil {
			gate(key)
		}
		s.mu.Lock()
		n := s.seen[key]
		s.seen[key]++
		s.got = append(s.got, key)
		s.ids[key] = r.Header.Get("webhook-id")
		code := s.script(key, n)
		s.mu.Unlock()
		w.WriteHeader(code)
		s.hit <- key
	}))
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *sink) wait(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-s.hit:
		if got != want {
			t.Fatalf("sink got %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sink never got %q", want)
	}
}

func (s *sink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func baseChange(url string, d model.Destination) Change {
	d.Slug, d.URL, d.AllowPrivateNetwork = "app", url, true
	return Change{
		Sources:      []model.Source{{Slug: "src", Provider: "generic", Verify: "none", Routes: []model.Route{{Destination: "app"}}}},
		Destinations: []model.Destination{d},
	}
}

// testStart is where the tests' manual clocks start.
var testStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// waitTimer waits until the destination has scheduled its next attempt and
// returns how far in the future it is. The node's sweep timer (due a whole
// number of sweep periods after testStart) is not the destination's.
func waitTimer(t *testing.T, c *ManualClock) time.Duration {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, at := range c.Timers() {
			if at.Sub(testStart)%sweepEvery != 0 {
				return at.Sub(c.Now())
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no retry was scheduled")
	return 0
}

func TestOrderedRetriesFollowBackoffThenDeadLetter(t *testing.T) {
	clock := NewManualClock(testStart)
	s, srv := newSink(t, func(key string, n int) int {
		switch {
		case key == "e1" && n < 2:
			return 500 // fails twice, then succeeds
		case key == "e2":
			return 503 // always fails: dead-lettered
		}
		return 200
	})
	tn := startNode(t, t.TempDir(), clock, baseChange(srv.URL, model.Destination{
		Ordering: "ordered", MaxAttempts: 3, BackoffBase: model.Duration(time.Second), BackoffMax: model.Duration(3 * time.Second),
	}))
	ids := map[string]string{}
	for _, k := range []string{"e1", "e2", "e3"} {
		ids[k] = tn.ingest(t, "src", k, "body-"+k).EventID
	}

	s.wait(t, "e1")
	if d := waitTimer(t, clock); d != time.Second {
		t.Fatalf("first retry in %v, want 1s (base)", d)
	}
	clock.Advance(time.Second)
	s.wait(t, "e1")
	if d := waitTimer(t, clock); d != 2*time.Second {
		t.Fatalf("second retry in %v, want 2s", d)
	}
	clock.Advance(2 * time.Second)
	s.wait(t, "e1") // succeeds; e2 may start only now
	s.wait(t, "e2")
	if d := waitTimer(t, clock); d != time.Second {
		t.Fatalf("e2 retry in %v, want 1s", d)
	}
	clock.Advance(time.Second)
	s.wait(t, "e2")
	if d := waitTimer(t, clock); d != 2*time.Second {
		t.Fatalf("e2 second retry in %v, want 2s", d)
	}
	clock.Advance(2 * time.Second)
	s.wait(t, "e2") // third failure: dead-lettered, e3 proceeds
	s.wait(t, "e3")

	want := []string{"e1", "e1", "e1", "e2", "e2", "e2", "e3"}
	if got := s.received(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sink saw %v, want %v", got, want)
	}
	// Outcomes join later group commits (the ordered pipeline): wait for
	// the records to settle.
	waitStatus(t, tn, ids["e3"], wal.StatusDelivered)
	d2 := waitStatus(t, tn, ids["e2"], wal.StatusDead)
	if len(d2.Attempts) != 3 || d2.Attempts[2].StatusCode != 503 {
		t.Fatalf("e2 attempts = %+v", d2.Attempts)
	}
	dead, _, err := tn.db.ListDead("app", 0, 10)
	if err != nil || len(dead) != 1 || dead[0] != ids["e2"] {
		t.Fatalf("dead-letter queue = %v, %v", dead, err)
	}
	if s.ids["e1"] != ids["e1"] {
		t.Fatalf("webhook-id %q, want the event id %q", s.ids["e1"], ids["e1"])
	}
}

func waitStatus(t *testing.T, tn *testNode, id, status string) *wal.Delivery {
	t.Helper()
	_, seq, err := wal.ParseEventID(id)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := tn.db.GetDelivery("app", seq)
		if err == nil && d.Status == status {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never reached %s (last: %+v, %v)", id, status, d, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestConcurrentDuplicatesStoreOneEventDeliverOnce(t *testing.T) {
	var hits atomic.Int32
	_, srv := newSink(t, func(string, int) int { hits.Add(1); return 200 })
	tn := startNode(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{}))
	var wg sync.WaitGroup
	results := make([]IngestResult, 100)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = tn.ingest(t, "src", "same-key", "same body")
		}()
	}
	wg.Wait()
	fresh := 0
	for _, r := range results {
		if r.EventID != results[0].EventID {
			t.Fatalf("two event ids for one key: %s and %s", r.EventID, results[0].EventID)
		}
		if !r.Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d requests stored a new event, want 1", fresh)
	}
	waitStatus(t, tn, results[0].EventID, wal.StatusDelivered)
	time.Sleep(100 * time.Millisecond)
	if h := hits.Load(); h != 1 {
		t.Fatalf("sink hit %d times, want 1", h)
	}
	evs, _, err := tn.db.ListEvents(0, 10, nil)
	if err != nil || len(evs) != 1 {
		t.Fatalf("stored %d events, want 1 (%v)", len(evs), err)
	}
}

func TestRestartResumesQueueAndRetrySchedule(t *testing.T) {
	dir := t.TempDir()
	var up atomic.Bool
	s, srv := newSink(t, func(string, int) int {
		if up.Load() {
			return 200
		}
		return 500
	})
	change := baseChange(srv.URL, model.Destination{Ordering: "ordered", MaxAttempts: 5, BackoffBase: model.Duration(50 * time.Millisecond), BackoffMax: model.Duration(100 * time.Millisecond)})
	tn := startNode(t, dir, nil, change)
	for i := 0; i < 5; i++ {
		tn.ingest(t, "src", fmt.Sprint("k", i), "b")
	}
	s.wait(t, "k0")
	tn.stop()

	up.Store(true)
	startNode(t, dir, nil, change)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.received()
		delivered := map[string]bool{}
		for _, k := range got {
			delivered[k] = true
		}
		if len(delivered) == 5 {
			// In order: the first time each key appears.
			var order []string
			seen := map[string]bool{}
			for _, k := range got {
				if !seen[k] {
					seen[k] = true
					order = append(order, k)
				}
			}
			if fmt.Sprint(order) != "[k0 k1 k2 k3 k4]" {
				t.Fatalf("order after restart %v", order)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart the sink saw only %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParallelRespectsMaxInFlight(t *testing.T) {
	var cur, peak atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		cur.Add(-1)
	}))
	defer srv.Close()
	tn := startNode(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{Ordering: "parallel", MaxInFlight: 4}))
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, tn.ingest(t, "src", fmt.Sprint("p", i), "b").EventID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cur.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if p := peak.Load(); p != 4 {
		t.Fatalf("peak in flight %d, want 4", p)
	}
	close(release)
	for _, id := range ids {
		waitStatus(t, tn, id, wal.StatusDelivered)
	}
	if p := peak.Load(); p > 4 {
		t.Fatalf("peak in flight %d, want at most 4", p)
	}
}

func TestPassivatedDestinationComesBack(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := Start(Config{DB: db, Deliverer: delivery.NewClient(delivery.Options{}), PassivateAfter: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Apply(baseChange(srv.URL, model.Destination{})); err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, db: db}
	for i := 0; i < 3; i++ {
		id := tn.ingest(t, "src", fmt.Sprint("z", i), "b").EventID
		s.wait(t, fmt.Sprint("z", i))
		waitStatus(t, tn, id, wal.StatusDelivered)
		deadline := time.Now().Add(5 * time.Second)
		for n.LiveDestinations() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("idle destination actor never passivated")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestDuplicateAfterRestart: the shard keeps only recent keys in memory; an
// older key is found on disk, so a redelivery after a restart (empty
// memory) is still a duplicate.
func TestDuplicateAfterRestart(t *testing.T) {
	dir := t.TempDir()
	_, srv := newSink(t, func(string, int) int { return 200 })
	tn := startNode(t, dir, nil, baseChange(srv.URL, model.Destination{}))
	first := tn.ingest(t, "src", "once", "body")
	tn.stop()
	tn = startNode(t, dir, nil, baseChange(srv.URL, model.Destination{}))
	again := tn.ingest(t, "src", "once", "body")
	if !again.Duplicate || again.EventID != first.EventID {
		t.Fatalf("after restart: %+v, want a duplicate of %s", again, first.EventID)
	}
	if fresh := tn.ingest(t, "src", "other", "body"); fresh.Duplicate {
		t.Fatalf("a new key was taken for a duplicate: %+v", fresh)
	}
}
