package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// waitReplay polls the node until the replay satisfies cond.
func waitReplay(t *testing.T, n *Node, id, what string, cond func(model.Replay) bool) model.Replay {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := n.Replay(id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay %s never got to %s: %+v", id, what, rec)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func scanned(r model.Replay) bool { return r.ScanDone && r.Total == 1 }

// TestReplaysRidingOneDelivery: two replays of an event still pending ride
// on its one queued delivery (the second takes over its replay id); when
// it is delivered, both finish, told by message, with nothing polling.
func TestReplaysRidingOneDelivery(t *testing.T) {
	s, srv := newSink(t, func(string, int) int { return 200 })
	ch := baseChange(srv.URL, model.Destination{Paused: true})
	tn := startNode(t, t.TempDir(), nil, ch)
	ev := tn.ingest(t, "src", "a", `{}`)

	first, err := tn.StartReplay(model.Replay{EventID: ev.EventID, Destination: "app", RequestedBy: "test"}, "event", ev.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != model.ReplayQueued || first.ID == "" {
		t.Fatalf("StartReplay = %+v", first)
	}
	waitReplay(t, tn.Node, first.ID, "running with its pair sent", scanned)
	second, err := tn.StartReplay(model.Replay{EventID: ev.EventID, Destination: "app", RequestedBy: "test"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitReplay(t, tn.Node, second.ID, "running with its pair sent", scanned)
	if n := tn.ActiveReplays(); n != 2 {
		t.Fatalf("ActiveReplays = %d; want 2", n)
	}

	ch.Destinations[0].Paused = false
	if err := tn.Apply(Change{Destinations: ch.Destinations}); err != nil {
		t.Fatal(err)
	}
	s.wait(t, "a")
	for _, id := range []string{first.ID, second.ID} {
		rec := waitReplay(t, tn.Node, id, "completed", func(r model.Replay) bool { return r.Status.Finished() })
		if rec.Status != model.ReplayCompleted || rec.Succeeded != 1 || rec.Failed != 0 || rec.Events != 1 || rec.FinishedAt.IsZero() {
			t.Fatalf("replay %s: %+v", id, rec)
		}
	}
	if got := s.received(); len(got) != 1 {
		t.Fatalf("the sink got %v; the replays should have ridden on the one pending delivery", got)
	}
	if n := tn.ActiveReplays(); n != 0 {
		t.Fatalf("ActiveReplays = %d after both finished", n)
	}
}

// TestReplayToDeletedDestination: a pair outstanding at a destination that
// is then deleted finishes as failed, so the replay completes.
func TestReplayToDeletedDestination(t *testing.T) {
	_, srv := newSink(t, func(string, int) int { return 200 })
	ch := baseChange(srv.URL, model.Destination{Paused: true})
	tn := startNode(t, t.TempDir(), nil, ch)
	ev := tn.ingest(t, "src", "a", `{}`)
	rp, err := tn.StartReplay(model.Replay{EventID: ev.EventID, RequestedBy: "test"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitReplay(t, tn.Node, rp.ID, "running with its pair sent", scanned)

	src := ch.Sources[0]
	src.Routes = nil
	if err := tn.Apply(Change{Sources: []model.Source{src}, DeleteDestinations: []string{"app"}}); err != nil {
		t.Fatal(err)
	}
	rec := waitReplay(t, tn.Node, rp.ID, "finished", func(r model.Replay) bool { return r.Status.Finished() })
	if rec.Status != model.ReplayCompleted || rec.Failed != 1 || rec.Succeeded != 0 {
		t.Fatalf("replay: %+v", rec)
	}

	// A replay to a destination that is gone has nothing to send.
	rp2, err := tn.StartReplay(model.Replay{EventID: ev.EventID, RequestedBy: "test"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	rec = waitReplay(t, tn.Node, rp2.ID, "finished", func(r model.Replay) bool { return r.Status.Finished() })
	if rec.Status != model.ReplayCompleted || rec.Total != 0 || rec.Events != 1 {
		t.Fatalf("replay to a deleted destination: %+v", rec)
	}
}

// TestReplayNotFoundAndListing: an unknown id is ErrNotFound; replays list
// newest first, by pages.
func TestReplayNotFoundAndListing(t *testing.T) {
	_, srv := newSink(t, func(string, int) int { return 200 })
	tn := startNode(t, t.TempDir(), nil, baseChange(srv.URL, model.Destination{}))
	if _, err := tn.Replay("rpl_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Replay(unknown) = %v; want ErrNotFound", err)
	}
	ev := tn.ingest(t, "src", "a", `{}`)
	var ids []string
	for range 3 {
		rp, err := tn.StartReplay(model.Replay{EventID: ev.EventID, RequestedBy: "test"}, "", "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rp.ID)
		time.Sleep(time.Millisecond) // ids order by creation time
	}
	page, next, err := tn.Replays("", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] || next != ids[1] {
		t.Fatalf("first page %v next %q; want %v newest first", page, next, ids)
	}
	page, next, err = tn.Replays(next, 2)
	if err != nil || len(page) != 1 || page[0].ID != ids[0] || next != "" {
		t.Fatalf("second page %v next %q err %v", page, next, err)
	}
}
