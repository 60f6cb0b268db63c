package admin

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"
)

// The parts of a replay carried out by several members read as one: counts
// added, the most events any part scanned, failed if one failed, running
// while one runs, finished when the last one finished.
func TestMergeReplayParts(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	part := func(st model.ReplayStatus, total, ok, failed, events int, dests ...string) model.Replay {
		r := model.Replay{ID: "rpl_0000000000000001deadbeef", Status: st, Total: total, Succeeded: ok, Failed: failed, Events: events,
			CreatedAt: t0.Add(time.Duration(total) * time.Second), Destinations: dests, ScanDone: st.Finished()}
		if st.Finished() {
			r.FinishedAt = t0.Add(time.Minute + time.Duration(total)*time.Second)
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		parts  []replayPart
		status model.ReplayStatus
		total  int
		events int
		done   bool
	}{
		{"one part", []replayPart{{2, part(model.ReplayCompleted, 3, 3, 0, 3, "a")}}, model.ReplayCompleted, 3, 3, true},
		{"all completed", []replayPart{{3, part(model.ReplayCompleted, 2, 2, 0, 2, "c")}, {1, part(model.ReplayCompleted, 4, 3, 1, 2, "a", "b")}}, model.ReplayCompleted, 6, 2, true},
		{"one running", []replayPart{{1, part(model.ReplayCompleted, 2, 2, 0, 2, "a")}, {2, part(model.ReplayRunning, 1, 0, 0, 1, "b")}}, model.ReplayRunning, 3, 2, false},
		{"all queued", []replayPart{{1, part(model.ReplayQueued, 0, 0, 0, 0, "a")}, {2, part(model.ReplayQueued, 0, 0, 0, 0, "b")}}, model.ReplayQueued, 0, 0, false},
		{"one failed", []replayPart{{1, part(model.ReplayFailed, 2, 1, 0, 2, "a")}, {2, part(model.ReplayCompleted, 2, 2, 0, 2, "b")}}, model.ReplayFailed, 4, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeReplayParts(slices.Clone(tc.parts))
			if got.Status != tc.status || got.Total != tc.total || got.Events != tc.events || got.ScanDone != tc.done || got.FinishedAt.IsZero() == tc.done {
				t.Fatalf("merged = %+v; want status %s, total %d, events %d, done %v", got, tc.status, tc.total, tc.events, tc.done)
			}
			var members []uint64
			var dests []string
			ok, failed := 0, 0
			earliest := tc.parts[0].rec.CreatedAt
			for _, p := range tc.parts {
				members = append(members, p.member)
				dests = append(dests, p.rec.Destinations...)
				ok += p.rec.Succeeded
				failed += p.rec.Failed
				if p.rec.CreatedAt.Before(earliest) {
					earliest = p.rec.CreatedAt
				}
			}
			slices.Sort(members)
			slices.Sort(dests)
			if !slices.Equal(got.Members, members) || !slices.Equal(got.Destinations, dests) || got.Succeeded != ok || got.Failed != failed || !got.CreatedAt.Equal(earliest) {
				t.Fatalf("merged = %+v; want members %v, destinations %v, %d succeeded, %d failed, created %v", got, members, dests, ok, failed, earliest)
			}
		})
	}
}

// A replay asked of a member goes, with the caller's token, to the member
// leading the destination's partition; one that answers 409 elsewhere (it
// lost the partition, or has not taken it over yet) or 503 (its metadata
// shard electing) is asked again, and the replay reads as that member's
// part.
func TestReplayForwardedRetries(t *testing.T) {
	for _, first := range []*Error{
		{Status: http.StatusConflict, Code: "elsewhere", Message: "not yet the owner"},
		{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the metadata shard: timeout"},
	} {
		t.Run(first.Code, func(t *testing.T) { testReplayForwardedRetries(t, first) })
	}
}

func testReplayForwardedRetries(t *testing.T, refusal *Error) {
	var mu sync.Mutex
	var asked []Replay
	var tokens []string
	member2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/cluster/replays" {
			http.NotFound(w, r)
			return
		}
		var in Replay
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			t.Errorf("the forwarded part does not decode: %v", err)
		}
		mu.Lock()
		asked = append(asked, in)
		tokens = append(tokens, r.Header.Get("Authorization"))
		first := len(asked) == 1
		mu.Unlock()
		if first {
			writeError(w, &Error{Status: refusal.Status, Code: refusal.Code, Message: refusal.Message})
			return
		}
		in.Status, in.RequestedBy = model.ReplayQueued, "token:bootstrap"
		writeJSON(w, http.StatusAccepted, in)
	}))
	defer member2.Close()
	e := newEnv(t, envOpts{bootstrap: testToken, membership: &fakeMembership{},
		partitions: allLedBy(2),
		peers:      &Peers{Self: 1, URLs: map[uint64]string{1: "http://127.0.0.1:1", 2: member2.URL}},
	})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "k1", `{"a":1}`)

	var rec Replay
	e.must(http.StatusAccepted, "POST", "/api/v1/events/"+id+"/replay", map[string]any{"reason": "moved"}, &rec)
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0].ID != asked[1].ID || !model.ValidReplayID(asked[1].ID) {
		t.Fatalf("member 2 was asked %+v; want twice, under one replay id", asked)
	}
	if p := asked[1]; p.EventID != id || !slices.Equal(p.Destinations, []string{"app"}) || p.Reason != "moved" {
		t.Fatalf("forwarded part = %+v", p)
	}
	for _, tok := range tokens {
		if tok != "Bearer "+testToken {
			t.Fatalf("forwarded with %q, want the caller's token", tok)
		}
	}
	if rec.ID != asked[1].ID || !slices.Equal(rec.Members, []uint64{2}) || rec.Status != model.ReplayQueued {
		t.Fatalf("answer = %+v; want member 2's part of %s", rec, asked[1].ID)
	}
}

// A member forwards a replay to the admin URL the destination's member
// recorded in the metadata shard, read at each replay (so a record that
// changes is followed); --member-admin-urls (Peers.URLs) wins over a
// record; a member with no usable URL is answered at once with 409,
// naming the member and why.
func TestReplayForwardedToRecordedURL(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	member := func(name string, status int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var in Replay
			json.NewDecoder(r.Body).Decode(&in)
			mu.Lock()
			hits[name]++
			mu.Unlock()
			if status != http.StatusAccepted {
				writeError(w, &Error{Status: status, Code: "internal", Message: name + " should not be asked"})
				return
			}
			in.Status = model.ReplayQueued
			writeJSON(w, http.StatusAccepted, in)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	good, stale := member("good", http.StatusAccepted), member("stale", http.StatusInternalServerError)

	var recMu sync.Mutex
	recorded := map[uint64]string{1: "http://127.0.0.1:1"}
	setRecord := func(u string, ok bool) {
		recMu.Lock()
		defer recMu.Unlock()
		if recorded[2] = u; !ok {
			delete(recorded, 2)
		}
	}
	peers := &Peers{Self: 1, Recorded: func() (map[uint64]string, error) {
		recMu.Lock()
		defer recMu.Unlock()
		return maps.Clone(recorded), nil
	}}
	e := newEnv(t, envOpts{bootstrap: testToken, membership: &fakeMembership{},
		partitions: allLedBy(2),
		peers:      peers,
	})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "k1", `{"a":1}`)
	replay := func() (int, string) {
		start := time.Now()
		code, raw := e.call("POST", "/api/v1/events/"+id+"/replay", map[string]any{"destination": "app", "reason": "r"}, nil)
		if code == http.StatusConflict && time.Since(start) >= replayRetryPause {
			t.Errorf("a member without a URL was asked again (%v)", time.Since(start))
		}
		return code, string(raw)
	}
	asked := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[name]
	}

	for _, tc := range []struct {
		record string
		want   string // in the 409's message
	}{
		{"", "member 2 recorded no admin URL"},
		{"http://10.0.0.2:8081", "plain http only to a loopback address"},
	} {
		setRecord(tc.record, true)
		code, body := replay()
		if code != http.StatusConflict || !strings.Contains(body, `"elsewhere"`) || !strings.Contains(body, "member 2 delivers \\\"app\\\"") || !strings.Contains(body, tc.want) {
			t.Fatalf("record %q: %d %s; want 409 elsewhere naming member 2 and %q", tc.record, code, body, tc.want)
		}
	}
	setRecord("", false)
	if code, body := replay(); code != http.StatusConflict || !strings.Contains(body, "not recorded as a member") {
		t.Fatalf("member 2 not recorded: %d %s", code, body)
	}

	setRecord(good.URL, true)
	if code, body := replay(); code != http.StatusAccepted || asked("good") != 1 {
		t.Fatalf("member 2 recorded %s: %d %s, asked %d times", good.URL, code, body, asked("good"))
	}

	// The operator's URL for a member wins over its record; the others'
	// records still count.
	over := &Peers{Self: 1, URLs: map[uint64]string{2: good.URL}, Recorded: func() (map[uint64]string, error) {
		return map[uint64]string{1: "", 2: stale.URL, 3: "https://n3.example:8443"}, nil
	}}
	if u, err := over.url(2); u != good.URL || err != nil {
		t.Fatalf("member 2 with --member-admin-urls and a record: %q, %v; want %q", u, err, good.URL)
	}
	if u, err := over.url(3); u != "https://n3.example:8443" || err != nil {
		t.Fatalf("member 3, recorded only: %q, %v", u, err)
	}
	if others := over.others(); !slices.Equal(others, []uint64{2, 3}) {
		t.Fatalf("others = %v, want [2 3]", others)
	}
}

// allLedBy is a cluster's partitions (8) as a member sees them when member
// leader leads all of them.
func allLedBy(leader uint64) func() ([]api.ClusterPartition, error) {
	return func() ([]api.ClusterPartition, error) {
		var out []api.ClusterPartition
		for p := range 8 {
			out = append(out, api.ClusterPartition{Partition: uint16(p), Leader: leader})
		}
		return out, nil
	}
}
