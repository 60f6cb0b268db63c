package admin

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

// TestDeadLetterFixReplay: a destination fails until fixed; the event
// dead-letters; the sink is fixed; a replay delivers it with the same
// webhook-id; the audit log tells the story in order.
func TestDeadLetterFixReplay(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	sk.failing.Store(true)
	secret := e.setup(sk, map[string]any{"max_attempts": 3, "backoff_base": "10ms", "backoff_max": "20ms"})
	id := e.ingest("shop", secret, "order-9", `{"order":9}`)

	eventually(t, 10*time.Second, "dead-lettering", func() bool { return e.event(id).Status == EventDeadLettered })
	if sk.total.Load() != 3 {
		t.Fatalf("the sink saw %d attempts, want 3", sk.total.Load())
	}
	var dead Page[DeadLetter]
	e.must(http.StatusOK, "GET", "/api/v1/destinations/app/dead-letters", nil, &dead)
	if len(dead.Items) != 1 || dead.Items[0].EventID != id || dead.Items[0].Attempts != 3 || dead.Items[0].Last.StatusCode != 503 {
		t.Fatalf("dead letters: %+v", dead)
	}

	sk.failing.Store(false)
	var rp Replay
	e.must(http.StatusAccepted, "POST", "/api/v1/events/"+id+"/replay", map[string]any{"reason": "sink fixed"}, &rp)
	if rp.ID == "" || rp.Status != ReplayQueued {
		t.Fatalf("replay: %+v", rp)
	}
	rp = e.waitReplay(rp.ID, 10*time.Second)
	if rp.Total != 1 || rp.Succeeded != 1 || rp.Failed != 0 || rp.Reason != "sink fixed" || rp.RequestedBy != "token:bootstrap" {
		t.Fatalf("completed replay: %+v", rp)
	}
	if got := sk.accepted(); len(got) != 1 || got[0] != id {
		t.Fatalf("the sink accepted %v, want [%s] (the event's webhook-id)", got, id)
	}
	ev := e.event(id)
	d := ev.Deliveries[0]
	if ev.Status != EventDelivered || len(d.Attempts) != 4 || d.Attempts[3].ReplayID != rp.ID || d.Attempts[2].ReplayID != "" {
		t.Fatalf("after replay: %+v", ev)
	}
	e.must(http.StatusOK, "GET", "/api/v1/destinations/app/dead-letters", nil, &dead)
	if len(dead.Items) != 0 {
		t.Fatalf("still dead: %+v", dead.Items)
	}

	// The audit trail, oldest first.
	all, _, err := e.db.ListAudit(0, 1<<20, func(a *wal.AuditEntry) bool { return a.ObjectID == id || a.ReplayID == rp.ID })
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(all)
	var actions []string
	for _, a := range all {
		actions = append(actions, a.Action)
	}
	want := []string{"event.received", "delivery.attempt_failed", "delivery.attempt_failed", "delivery.attempt_failed",
		"delivery.dead_lettered", "replay.requested", "delivery.delivered", "replay.completed"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit trail:\n got %v\nwant %v", actions, want)
	}
	if all[5].Actor != "token:bootstrap" || all[5].Detail["reason"] != "sink fixed" || all[6].ReplayID != rp.ID {
		t.Fatalf("replay audit entries: %+v %+v", all[5], all[6])
	}
	var page Page[wal.AuditEntry]
	e.must(http.StatusOK, "GET", "/api/v1/audit?replay_id="+rp.ID+"&action=replay.*", nil, &page)
	if len(page.Items) != 2 {
		t.Fatalf("audit filter by replay: %+v", page.Items)
	}

	// Redrive: dead-letter again, then redrive the queue.
	sk.failing.Store(true)
	id2 := e.ingest("shop", secret, "order-10", `{"order":10}`)
	eventually(t, 10*time.Second, "dead-lettering", func() bool { return e.event(id2).Status == EventDeadLettered })
	sk.failing.Store(false)
	e.must(http.StatusAccepted, "POST", "/api/v1/destinations/app/dead-letters/redrive", map[string]any{"reason": "again"}, &rp)
	rp = e.waitReplay(rp.ID, 10*time.Second)
	if rp.Total != 1 || rp.Succeeded != 1 || sk.count(id2) != 1 {
		t.Fatalf("redrive: %+v, sink saw %d", rp, sk.count(id2))
	}

	// The record survives a restart.
	var list Page[Replay]
	e.must(http.StatusOK, "GET", "/api/v1/replays", nil, &list)
	if len(list.Items) != 2 || list.Items[0].ID != rp.ID {
		t.Fatalf("replay list: %+v", list)
	}
	e.stop()
	e2 := newEnv(t, envOpts{bootstrap: testToken, dir: e.dir})
	var again Replay
	e2.must(http.StatusOK, "GET", "/api/v1/replays/"+rp.ID, nil, &again)
	if again.Status != ReplayCompleted || again.Succeeded != 1 {
		t.Fatalf("after restart: %+v", again)
	}
}

func TestBulkReplay(t *testing.T) {
	n := 10_000
	if raceEnabled {
		n = 500 // the race detector makes 10,000 too slow; the plain run does 10,000
	}
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, map[string]any{"ordering": "parallel", "max_in_flight": 32})

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := postSigned(e, "shop", secret, fmt.Sprintf("k-%d", i), fmt.Sprintf(`{"i":%d}`, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "first deliveries", func() bool { return len(sk.accepted()) == n })
	t.Logf("ingested and delivered %d events in %v", n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	var rp Replay
	e.must(http.StatusAccepted, "POST", "/api/v1/replays", map[string]any{"source": "shop", "reason": "bulk"}, &rp)
	rp = e.waitReplay(rp.ID, 60*time.Second)
	took := time.Since(start)
	t.Logf("bulk replay of %d events: %v (%.0f events/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	if rp.Total != n || rp.Events != n || rp.Succeeded != n || rp.Failed != 0 {
		t.Fatalf("replay: %+v", rp)
	}
	ids := sk.accepted()
	if len(ids) != 2*n {
		t.Fatalf("the sink accepted %d requests, want %d", len(ids), 2*n)
	}
	counts := map[string]int{}
	for _, id := range ids {
		counts[id]++
	}
	if len(counts) != n {
		t.Fatalf("%d distinct webhook-ids, want %d", len(counts), n)
	}
	for id, c := range counts {
		if c != 2 {
			t.Fatalf("event %s delivered %d times, want once originally and once by the replay", id, c)
		}
	}
}

func postSigned(e *env, source, secret, key, body string) error {
	req, _ := http.NewRequest(http.MethodPost, e.in.URL+"/in/"+source, strings.NewReader(body))
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric([]byte(secret), []byte(body)))
	req.Header.Set("X-Event-Id", key)
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ingest %s: %d", key, resp.StatusCode)
	}
	return nil
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	e.must(http.StatusOK, "POST", "/api/v1/destinations/app/pause", nil, nil)
	ids := []string{e.ingest("shop", secret, "a", `{}`), e.ingest("shop", secret, "b", `{}`)}
	time.Sleep(300 * time.Millisecond)
	if got := sk.total.Load(); got != 0 {
		t.Fatalf("a paused destination was sent %d requests", got)
	}
	var d DestinationOut
	e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, &d)
	if !d.Paused || d.Stats.QueueDepth != 2 || d.Stats.OldestPendingAt.IsZero() || d.Stats.OldestPendingAgeSec <= 0 {
		t.Fatalf("paused destination: %+v %+v", d.Destination, d.Stats)
	}
	e.must(http.StatusOK, "POST", "/api/v1/destinations/app/resume", nil, nil)
	eventually(t, 10*time.Second, "delivery after resume", func() bool { return len(sk.accepted()) == 2 })
	if got := sk.accepted(); !slices.Equal(got, ids) {
		t.Fatalf("after resume: %v, want %v in order", got, ids)
	}
	eventually(t, 5*time.Second, "empty queue", func() bool {
		e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, &d)
		return d.Stats.QueueDepth == 0
	})
}

func TestSecretRotation(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	old := e.setup(sk, nil)
	var rot SecretRotation
	e.must(http.StatusCreated, "POST", "/api/v1/sources/shop/secrets", nil, &rot)
	if rot.Secret == "" || rot.Secret == old || len(rot.Source.SecretIDs) != 2 || strings.Contains(mustJSON(rot.Source), old) {
		t.Fatalf("rotation: %+v", rot)
	}
	if err := postSigned(e, "shop", old, "1", "{}"); err != nil {
		t.Fatalf("old secret during the overlap: %v", err)
	}
	if err := postSigned(e, "shop", rot.Secret, "2", "{}"); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	oldID := rot.Source.SecretIDs[0]
	e.must(http.StatusOK, "DELETE", "/api/v1/sources/shop/secrets/"+oldID, nil, nil)
	if err := postSigned(e, "shop", old, "3", "{}"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("old secret after removal: %v", err)
	}
	if err := postSigned(e, "shop", rot.Secret, "4", "{}"); err != nil {
		t.Fatalf("new secret after removal: %v", err)
	}
	e.must(http.StatusConflict, "DELETE", "/api/v1/sources/shop/secrets/"+rot.SecretID, nil, nil)
	e.must(http.StatusNotFound, "DELETE", "/api/v1/sources/shop/secrets/"+oldID, nil, nil)
	// A provider-issued secret can be supplied.
	e.must(http.StatusCreated, "POST", "/api/v1/sources/shop/secrets", map[string]any{"secret": "whsec_from_provider"}, &rot)
	if rot.Secret != "whsec_from_provider" {
		t.Fatalf("supplied secret: %+v", rot)
	}
	var page Page[wal.AuditEntry]
	e.must(http.StatusOK, "GET", "/api/v1/audit?action=secret.&object_id=shop", nil, &page)
	if len(page.Items) != 3 || page.Items[1].Action != "secret.revoked" {
		t.Fatalf("rotation audit: %+v", page.Items)
	}
	if strings.Contains(mustJSON(page.Items), "from_provider") {
		t.Fatal("audit shows a secret")
	}
}

// TestPaginationWhileIngesting: paging through the event list while events
// keep arriving never skips or repeats one that existed when paging began.
func TestPaginationWhileIngesting(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	var before []string
	for i := 0; i < 40; i++ {
		before = append(before, e.ingest("shop", secret, fmt.Sprintf("pre-%d", i), `{}`))
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := postSigned(e, "shop", secret, fmt.Sprintf("live-%d", i), `{}`); err != nil {
				done <- err
				return
			}
		}
	}()
	seen := map[string]bool{}
	var order []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page Page[EventOut]
		e.must(http.StatusOK, "GET", "/api/v1/events?source=shop&limit=7&cursor="+cursor, nil, &page)
		for _, ev := range page.Items {
			if seen[ev.ID] {
				t.Fatalf("event %s repeated on page %d", ev.ID, pages)
			}
			seen[ev.ID] = true
			order = append(order, ev.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, id := range before {
		if !seen[id] {
			t.Fatalf("event %s skipped", id)
		}
	}
	// Newest first.
	for i := 1; i < len(order); i++ {
		_, a, _ := wal.ParseEventID(order[i-1])
		_, b, _ := wal.ParseEventID(order[i])
		if a <= b {
			t.Fatalf("not newest first at %d: %s then %s", i, order[i-1], order[i])
		}
	}
}

// TestReplayInterruptedByRestart: a replay still running when the node
// stops reads as failed after the restart, saying why; the deliveries it
// queued still happen.
func TestReplayInterruptedByRestart(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "r1", `{}`)
	eventually(t, 10*time.Second, "delivery", func() bool { return e.event(id).Status == EventDelivered })
	e.must(http.StatusOK, "POST", "/api/v1/destinations/app/pause", nil, nil)
	var rp Replay
	e.must(http.StatusAccepted, "POST", "/api/v1/events/"+id+"/replay", map[string]any{"destination": "app"}, &rp)
	eventually(t, 5*time.Second, "the replay to run", func() bool {
		e.must(http.StatusOK, "GET", "/api/v1/replays/"+rp.ID, nil, &rp)
		return rp.Status == ReplayRunning && rp.ScanDone && rp.Total == 1
	})
	e.stop()

	e2 := newEnv(t, envOpts{bootstrap: testToken, dir: e.dir})
	e2.must(http.StatusOK, "GET", "/api/v1/replays/"+rp.ID, nil, &rp)
	if rp.Status != ReplayFailed || !strings.Contains(rp.Error, "interrupted by a restart") {
		t.Fatalf("after restart: %+v", rp)
	}
	e2.must(http.StatusOK, "POST", "/api/v1/destinations/app/resume", nil, nil)
	eventually(t, 10*time.Second, "the queued replay delivery", func() bool { return sk.count(id) == 2 })
	e2.must(http.StatusBadRequest, "POST", "/api/v1/events/"+id+"/replay", map[string]any{"destination": "other"}, nil)
	e2.must(http.StatusNotFound, "GET", "/api/v1/replays/rpl_nope", nil, nil)
}
