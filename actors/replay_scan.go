package actors

import (
	"errors"
	"slices"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

var errReplayStopped = errors.New("actors: replay scan stopped")

// replayTarget is one event to replay.
type replayTarget struct {
	part uint16
	seq  uint64
}

// scan collects rec's events and hands each (event, destination) pair to
// the coordinator, taking a slot of slots for each, so at most
// maxOutstanding of its pairs are unfinished at once.
func (r *replays) scan(rec model.Replay, slots chan struct{}) {
	defer r.scans.Done()
	root := r.n.system.Root
	targets, err := r.collect(rec)
	if err == nil {
		root.Send(r.pid, &replayCollectedMsg{id: rec.ID, events: len(targets)})
		err = r.sendPairs(rec, targets, slots)
	}
	if errors.Is(err, errReplayStopped) {
		return // the node is stopping; the replay reads as interrupted after a restart
	}
	root.Send(r.pid, &replayScannedMsg{id: rec.ID, err: err})
}

func (r *replays) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// collect lists the events to replay, oldest first, so an ordered
// destination receives them in their original order.
func (r *replays) collect(rec model.Replay) ([]replayTarget, error) {
	db := r.n.db
	switch {
	case rec.EventID != "":
		part, seq, err := wal.ParseEventID(rec.EventID)
		if err != nil {
			return nil, err
		}
		return []replayTarget{{part, seq}}, nil
	case rec.DeadLetters:
		var out []replayTarget
		var after uint64
		for {
			ids, next, err := db.ListDead(rec.Destination, after, 1000)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if len(rec.EventIDs) > 0 && !slices.Contains(rec.EventIDs, id) {
					continue
				}
				part, seq, err := wal.ParseEventID(id)
				if err != nil {
					continue
				}
				if rec.Filter != nil {
					e, err := db.GetEvent(part, seq)
					if err != nil || !MatchEventRecord(rec.Filter, e) {
						continue
					}
				}
				out = append(out, replayTarget{part, seq})
			}
			if next == 0 {
				return out, nil
			}
			after = next
			if r.stopped() {
				return nil, errReplayStopped
			}
		}
	default:
		var f model.EventFilter
		if rec.Filter != nil {
			f = *rec.Filter
		}
		var out []replayTarget
		var before uint64
		for {
			q, _, err := r.n.EventQuery(f, before)
			if err != nil {
				return nil, err
			}
			evs, next, err := db.QueryEvents(q, 1000)
			if err != nil {
				return nil, err
			}
			for _, e := range evs {
				out = append(out, replayTarget{e.Partition, e.Seq})
			}
			if next == 0 {
				slices.Reverse(out)
				return out, nil
			}
			before = next
			if r.stopped() {
				return nil, errReplayStopped
			}
		}
	}
}

// sendPairs reads each target and sends its pairs, waiting for a slot
// before each.
func (r *replays) sendPairs(rec model.Replay, targets []replayTarget, slots chan struct{}) error {
	root := r.n.system.Root
	for _, t := range targets {
		ev, err := r.n.db.GetEvent(t.part, t.seq)
		if err != nil {
			if errors.Is(err, wal.ErrNotFound) && rec.EventID == "" {
				continue // removed by retention since the scan
			}
			return err
		}
		dests := ev.Destinations
		if rec.Destination != "" {
			dests = []string{rec.Destination}
		}
		for _, d := range dests {
			if len(rec.Destinations) > 0 && !slices.Contains(rec.Destinations, d) {
				continue // another member's part
			}
			select {
			case slots <- struct{}{}:
			case <-r.done:
				return errReplayStopped
			}
			root.Send(r.pid, &replayPairMsg{id: rec.ID, ev: ev, dest: d})
		}
	}
	return nil
}
