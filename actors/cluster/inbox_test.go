package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// orderedEngine delivers nothing and calls every destination ordered, so
// each ingest proposes inbox entries.
type orderedEngine struct{}

func (orderedEngine) UseMember(actors.Member)             {}
func (orderedEngine) Own(uint16)                          {}
func (orderedEngine) Disown(uint16)                       {}
func (orderedEngine) EventApplied(*wal.Event, []string)   {}
func (orderedEngine) InboxApplied(string, uint16, uint64) {}
func (orderedEngine) Ordered(string) bool                 { return true }

// startOrderedMember starts a single member whose every destination is
// ordered; it is closed (then its store) when the test ends.
func startOrderedMember(t *testing.T) (*Cluster, *wal.DB) {
	t.Helper()
	db := openDB(t, t.TempDir())
	addr := freePort(t)
	c, err := Start(Config{NodeID: 1, RaftAddr: addr, Members: map[uint64]string{1: addr}, Dir: t.TempDir(), DB: db,
		RTT: 10 * time.Millisecond, Engine: orderedEngine{}})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); db.Close() })
	return c, db
}

// Concurrent ordered ingests share their inbox proposals: at most one
// drain goroutine per destination partition runs (the review found a
// goroutine per partition per ingest), fewer proposals than ingests go
// out, and every event has its inbox entry in each destination's
// partition before its Ingest returns.
func TestInboxProposalsAreGroupedAndBounded(t *testing.T) {
	c, db := startOrderedMember(t)
	for deadline := time.Now().Add(20 * time.Second); len(c.Owned()) < db.Partitions(); {
		if time.Now().After(deadline) {
			t.Fatalf("owns %v after 20 s", c.Owned())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var dests []string
	for p := range db.Partitions() {
		dests = append(dests, destIn(db, uint16(p)))
	}
	var routes []model.Route
	for _, d := range dests {
		routes = append(routes, model.Route{Destination: d})
	}
	src := &actors.SourceView{Source: model.Source{Slug: "s", Routes: routes}}

	const senders, each = 32, 8
	var wg sync.WaitGroup
	ids := make(chan string, senders*each)
	errs := make(chan error, senders*each)
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				res, err := c.Ingest(context.Background(), actors.IngestRequest{Source: "s", IdemKey: fmt.Sprintf("k%d-%d", i, j), Body: []byte("{}")}, src)
				if err != nil {
					errs <- err
					return
				}
				// Ingest returned: the inbox entries are applied here.
				ev, err := db.GetEventByID(res.EventID)
				if err != nil {
					errs <- err
					return
				}
				for _, d := range dests {
					if held, err := db.InboxHolds(d, ev.Seq); err != nil || !held {
						errs <- fmt.Errorf("event %s: no inbox entry for %s when Ingest returned (%v)", res.EventID, d, err)
						return
					}
				}
				ids <- res.EventID
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ids) != senders*each {
		t.Fatalf("%d events ingested, want %d", len(ids), senders*each)
	}
	// A drain answers its callers before it looks for more and exits:
	// give the last ones a moment to see nothing left.
	ip := c.inbox
	var peak, proposals, drains int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		ip.mu.Lock()
		peak, proposals, drains = ip.peak, ip.proposals, ip.drains
		ip.mu.Unlock()
		if drains == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d ordered ingests over %d inbox partitions: %d inbox proposals (one each would be %d), at most %d drain goroutines at once",
		senders*each, len(dests), proposals, senders*each*len(dests), peak)
	if peak > db.Partitions() {
		t.Fatalf("%d inbox drain goroutines at once; at most one per partition (%d)", peak, db.Partitions())
	}
	if drains != 0 {
		t.Fatalf("%d drain goroutines left with nothing to propose", drains)
	}
	if proposals >= senders*each*len(dests) {
		t.Fatalf("%d inbox proposals for %d ingests over %d partitions: none were grouped", proposals, senders*each, len(dests))
	}
}

// A sender's retry of an event is a duplicate: its inbox entries go again
// (the first try may have stopped short of them), but only for the
// destinations the stored event was routed to. A route added to the
// source since (a provider retrying hours later) must not hand the old
// event to a destination it never had: single-node serve would not
// deliver it there, and its delivery record would never expire (retention
// goes by the event's destinations).
func TestDuplicateInboxesOnlyTheEventsDestinations(t *testing.T) {
	c, db := startOrderedMember(t)
	first, added := destIn(db, 0), destIn(db, 1)
	src := &actors.SourceView{Source: model.Source{Slug: "s", Routes: []model.Route{{Destination: first}}}}
	req := actors.IngestRequest{Source: "s", IdemKey: "k", Body: []byte("{}")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res actors.IngestResult
	var err error
	for {
		// The partitions elect their leaders first.
		if res, err = c.Ingest(ctx, req, src); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	later := &actors.SourceView{Source: model.Source{Slug: "s", Routes: []model.Route{{Destination: first}, {Destination: added}}}}
	again, err := c.Ingest(ctx, req, later)
	if err != nil || !again.Duplicate || again.EventID != res.EventID {
		t.Fatalf("the retry: %+v %v, want a duplicate of %s", again, err, res.EventID)
	}
	_, seq, _ := wal.ParseEventID(res.EventID)
	if held, err := db.InboxHolds(first, seq); err != nil || !held {
		t.Errorf("%s's inbox: %v %v, want the event", first, held, err)
	}
	if held, err := db.InboxHolds(added, seq); err != nil || held {
		t.Errorf("%s, routed after the event was stored, got an inbox entry for it (%v)", added, err)
	}
}

// nextGroup groups waiting references up to maxInboxRefs and drops those
// whose callers went away (their requests ended without a 2xx), so a
// partition without a leader holds no more than the requests still
// waiting on it.
func TestNextGroup(t *testing.T) {
	gone := make(chan struct{})
	close(gone)
	live := make(chan struct{})
	w := func(n int, g chan struct{}) inboxWait {
		return inboxWait{refs: make([]inboxRef, n), gone: g}
	}
	for _, tc := range []struct {
		name                 string
		pending              []inboxWait
		group, rest, dropped int
	}{
		{"nothing", nil, 0, 0, 0},
		{"all fit", []inboxWait{w(1, live), w(2, live)}, 2, 0, 0},
		{"callers gone", []inboxWait{w(1, gone), w(2, live), w(3, gone)}, 1, 0, 2},
		{"only gone", []inboxWait{w(1, gone), w(1, gone)}, 0, 0, 2},
		{"over the cap", []inboxWait{w(maxInboxRefs-1, live), w(2, live), w(1, live)}, 1, 2, 0},
		{"one wait over the cap alone", []inboxWait{w(maxInboxRefs+1, live), w(1, live)}, 1, 1, 0},
		{"gone before the cap", []inboxWait{w(maxInboxRefs, gone), w(maxInboxRefs, live), w(1, live)}, 1, 1, 1},
	} {
		group, rest, dropped := nextGroup(tc.pending)
		if len(group) != tc.group || len(rest) != tc.rest || dropped != tc.dropped {
			t.Errorf("%s: group %d, rest %d, dropped %d; want %d, %d, %d", tc.name, len(group), len(rest), dropped, tc.group, tc.rest, tc.dropped)
		}
		for _, g := range group {
			select {
			case <-g.gone:
				t.Errorf("%s: a gone caller's references are proposed", tc.name)
			default:
			}
		}
	}
}
