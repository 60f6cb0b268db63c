package admin

import (
	"slices"
	"testing"
	"time"

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
