package actors

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// pageIDs pages through list seven events at a time.
func pageIDs(t *testing.T, list func(before uint64) ([]*wal.Event, uint64, error)) []string {
	t.Helper()
	var ids []string
	var before uint64
	for {
		evs, next, err := list(before)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID())
		}
		if next == 0 {
			return ids
		}
		before = next
	}
}

// Whatever index a filter reads, its list is what reading every event with
// EventScan lists, page by page: on a real node whose events were
// delivered, dead-lettered, left pending, replayed, and routed nowhere.
func TestEventQueryListsWhatAScanLists(t *testing.T) {
	_, srv := newSink(t, func(key string, _ int) int {
		if strings.HasPrefix(key, "bad") {
			return 500
		}
		return 200
	})
	ch := Change{
		Sources: []model.Source{
			{Slug: "gh", Provider: "generic", Verify: "none", Routes: []model.Route{{Destination: "app"}, {Destination: "crm", EventTypes: []string{"orders/*"}}}},
			{Slug: "shop", Provider: "generic", Verify: "none", Routes: []model.Route{{Destination: "app", EventTypes: []string{"orders/create"}}}},
		},
		Destinations: []model.Destination{
			{Slug: "app", URL: srv.URL, AllowPrivateNetwork: true, MaxAttempts: 1},
			{Slug: "crm", URL: srv.URL, AllowPrivateNetwork: true, Paused: true},
		},
	}
	tn := startNode(t, t.TempDir(), nil, ch)
	types := []string{"orders/create", "orders/cancelled", "push"}
	var ids []string
	for i := range 60 {
		src := []string{"gh", "shop"}[i%2]
		key := fmt.Sprintf("ok%02d", i)
		if i%5 == 0 {
			key = fmt.Sprintf("bad%02d", i)
		}
		sv, _ := tn.Source(src)
		res, err := tn.Ingest(context.Background(), IngestRequest{Source: src, IdemKey: key, EventType: types[i%3],
			Headers: [][2]string{{"X-Key", key}}, Body: []byte(`{}`), ReceivedAt: testStart.Add(time.Duration(i) * time.Minute)}, sv)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.EventID)
	}
	appDone := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			evs, _, err := tn.db.QueryEvents(wal.EventQuery{From: wal.PendingAt, Dest: "app"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("app still has pending events %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	appDone("after ingest")
	// Replays: a dead letter (dead again), a delivered event (delivered
	// again), and one at crm, which stays pending there.
	for _, r := range []model.Replay{{EventID: ids[0], Destination: "app"}, {EventID: ids[2], Destination: "app"}, {EventID: ids[4]}} {
		r.RequestedBy = "test"
		rec, err := tn.StartReplay(r, "", "")
		if err != nil {
			t.Fatal(err)
		}
		waitReplay(t, tn.Node, rec.ID, "scanned", func(r model.Replay) bool { return r.ScanDone })
	}
	appDone("after the replays")
	if err := tn.db.CheckIndexes(); err != nil {
		t.Fatal(err)
	}

	var filters []model.EventFilter
	for _, dest := range []string{"", "app", "crm", "none"} {
		for _, st := range []model.EventStatus{"", model.EventPending, model.EventDelivered, model.EventDeadLettered, model.EventNoDestinations} {
			filters = append(filters, model.EventFilter{Destination: dest, Status: st}, model.EventFilter{Destination: dest, Status: st, Source: "gh"})
		}
	}
	mid := testStart.Add(30 * time.Minute)
	filters = append(filters,
		model.EventFilter{Source: "shop"},
		model.EventFilter{EventType: "orders/*"},
		model.EventFilter{EventType: "push", Status: model.EventNoDestinations},
		model.EventFilter{IdempotencyKey: "bad10"},
		model.EventFilter{IdempotencyKey: "bad10", Source: "shop"},
		model.EventFilter{IdempotencyKey: "bad10", Source: "gh"},
		model.EventFilter{IdempotencyKey: "nope"},
		model.EventFilter{Until: mid},
		model.EventFilter{Since: mid},
		model.EventFilter{Since: mid, Until: mid.Add(7 * time.Minute)},
		model.EventFilter{Since: mid, Status: model.EventDeadLettered},
		model.EventFilter{Until: mid, Status: model.EventPending, Destination: "crm"},
		model.EventFilter{Until: testStart},
		model.EventFilter{Since: testStart.Add(time.Hour)},
	)
	seen := map[model.EventStatus]bool{}
	for _, f := range filters {
		scan := tn.EventScan(f)
		want := pageIDs(t, func(before uint64) ([]*wal.Event, uint64, error) { return tn.db.ListEventsUntil(before, 7, scan) })
		got := pageIDs(t, func(before uint64) ([]*wal.Event, uint64, error) {
			q, _, err := tn.EventQuery(f, before)
			if err != nil {
				return nil, 0, err
			}
			return tn.db.QueryEvents(q, 7)
		})
		if !slices.Equal(got, want) {
			t.Errorf("%+v: the index lists %v, a scan %v", f, got, want)
		}
		if f.Source == "" && f.Destination == "" && len(want) > 0 {
			seen[f.Status] = true
		}
	}
	// The store holds every status, or the comparison proves less.
	for _, st := range []model.EventStatus{model.EventPending, model.EventDelivered, model.EventDeadLettered, model.EventNoDestinations} {
		if !seen[st] {
			t.Errorf("no event is %s", st)
		}
	}
}
