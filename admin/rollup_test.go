package admin

import (
	"net/http"
	"testing"
	"time"
)

func TestRingAddWindowAndWrap(t *testing.T) {
	var r ring
	const base = int64(29_000_000) // a minute number in 2025
	r.add(base, counts{received: 2, delivered: 1})
	r.add(base, counts{received: 1, failed: 3})
	r.add(base+2, counts{dead: 1})
	// The slot of base is reused a day later: the old minute is gone.
	r.add(base+RollupMinutes+5, counts{received: 9})

	tests := []struct {
		name string
		last int64
		n    int
		want map[int64]counts // minutes with anything; the rest zero
	}{
		{"same minute twice adds up", base + 2, 3, map[int64]counts{base: {received: 3, delivered: 1, failed: 3}, base + 2: {dead: 1}}},
		{"a minute a day later does not read as the old one", base + RollupMinutes + 5, 10, map[int64]counts{base + RollupMinutes + 5: {received: 9}}},
		{"n is capped at a day", base + 2, RollupMinutes * 3, map[int64]counts{base: {received: 3, delivered: 1, failed: 3}, base + 2: {dead: 1}}},
		{"zero minutes", base, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.window(tc.last, tc.n)
			wantLen := min(tc.n, RollupMinutes)
			if len(got) != wantLen {
				t.Fatalf("%d minutes, want %d", len(got), wantLen)
			}
			for i, mc := range got {
				m := tc.last - int64(wantLen-1-i)
				if mc.Minute.Unix() != m*60 {
					t.Fatalf("minute %d is %v, want %v", i, mc.Minute, time.Unix(m*60, 0).UTC())
				}
				w := tc.want[m]
				if c := (counts{mc.Received, mc.Delivered, mc.Failed, mc.DeadLettered}); c != w {
					t.Errorf("minute %d: %+v, want %+v", m, c, w)
				}
			}
		})
	}
}

func TestRingMarshalRoundTripAndRejectsBad(t *testing.T) {
	var r ring
	r.add(100, counts{1, 2, 3, 4})
	r.add(100+RollupMinutes-1, counts{received: 5})
	raw, err := r.marshal(100 + RollupMinutes - 1)
	if err != nil {
		t.Fatal(err)
	}
	var back ring
	if err := back.unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	if back.get(100) != (counts{1, 2, 3, 4}) || back.get(100+RollupMinutes-1) != (counts{received: 5}) {
		t.Fatalf("round trip lost counts: %s", raw)
	}
	for _, bad := range []string{`{`, `{"v":2,"minutes":[]}`, `{"v":1,"minutes":[[-1,0,0,0,0]]}`, `{"v":1,"minutes":[[1,2]]}x`} {
		var r ring
		if err := r.unmarshal([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestMinutesCountDeliveriesAndSurviveRestart: the dashboard's per-minute
// counts follow what the node does and are still there after a restart.
func TestMinutesCountDeliveriesAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, envOpts{bootstrap: testToken, dir: dir})
	sk := newSink(t)
	secret := e.setup(sk, map[string]any{"max_attempts": 1})
	e.ingest("shop", secret, "ok-1", `{}`)
	e.ingest("shop", secret, "ok-2", `{}`)
	eventually(t, 10*time.Second, "two deliveries", func() bool { return len(sk.accepted()) == 2 })
	sk.failing.Store(true)
	id := e.ingest("shop", secret, "bad-1", `{}`)
	eventually(t, 10*time.Second, "a dead letter", func() bool { return e.event(id).Status == EventDeadLettered })

	sum := func(page Page[MinuteCounts]) counts {
		var c counts
		for _, m := range page.Items {
			c.received += m.Received
			c.delivered += m.Delivered
			c.failed += m.Failed
			c.dead += m.DeadLettered
		}
		return c
	}
	want := counts{received: 3, delivered: 2, failed: 1, dead: 1}
	var page Page[MinuteCounts]
	e.must(http.StatusOK, "GET", "/api/v1/stats/minutes?minutes=5", nil, &page)
	if len(page.Items) != 5 {
		t.Fatalf("%d minutes, want 5", len(page.Items))
	}
	if got := sum(page); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if code, _ := e.call("GET", "/api/v1/stats/minutes?minutes=0", nil, nil); code != http.StatusBadRequest {
		t.Fatalf("minutes=0: %d", code)
	}

	e.stop()
	e2 := newEnv(t, envOpts{bootstrap: testToken, dir: dir})
	page = Page[MinuteCounts]{}
	e2.must(http.StatusOK, "GET", "/api/v1/stats/minutes?minutes=5", nil, &page)
	if got := sum(page); got != want {
		t.Fatalf("after a restart: %+v, want %+v", got, want)
	}
}
