package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

// RollupMinutes is how far back the per-minute counts go: a day.
const RollupMinutes = 24 * 60

// MinuteCounts is what the node did in one minute.
type MinuteCounts struct {
	Minute       time.Time `json:"minute"`
	Received     int64     `json:"received"`
	Delivered    int64     `json:"delivered"`
	Failed       int64     `json:"failed"`
	DeadLettered int64     `json:"dead_lettered"`
}

// counts is one minute's tally, or a difference of totals.
type counts struct{ received, delivered, failed, dead int64 }

func (c counts) zero() bool { return c == counts{} }

func totalsDelta(now, before actors.Totals) counts {
	return counts{now.Received - before.Received, now.Delivered - before.Delivered, now.Failed - before.Failed, now.DeadLettered - before.DeadLettered}
}

// ring keeps RollupMinutes minutes of counts, indexed by the minute number
// (Unix seconds / 60) modulo its size; a slot holding an older minute
// reads as zero. It does no I/O and reads no clock.
type ring struct {
	slots [RollupMinutes]struct {
		minute int64
		c      counts
	}
}

func (r *ring) add(minute int64, d counts) {
	s := &r.slots[minute%RollupMinutes]
	if s.minute != minute {
		s.minute, s.c = minute, counts{}
	}
	s.c.received += d.received
	s.c.delivered += d.delivered
	s.c.failed += d.failed
	s.c.dead += d.dead
}

func (r *ring) get(minute int64) counts {
	if s := &r.slots[minute%RollupMinutes]; s.minute == minute {
		return s.c
	}
	return counts{}
}

// window returns the n minutes ending with minute last, oldest first.
func (r *ring) window(last int64, n int) []MinuteCounts {
	n = min(max(n, 0), RollupMinutes)
	out := make([]MinuteCounts, 0, n)
	for m := last - int64(n) + 1; m <= last; m++ {
		c := r.get(m)
		out = append(out, MinuteCounts{Minute: time.Unix(m*60, 0).UTC(), Received: c.received, Delivered: c.delivered, Failed: c.failed, DeadLettered: c.dead})
	}
	return out
}

// storedRollup is the ring at rest: the minutes with anything in them.
type storedRollup struct {
	Version int        `json:"v"`
	Minutes [][5]int64 `json:"minutes"` // minute, received, delivered, failed, dead-lettered
}

func (r *ring) marshal(last int64) ([]byte, error) {
	st := storedRollup{Version: 1, Minutes: [][5]int64{}}
	for m := last - RollupMinutes + 1; m <= last; m++ {
		if c := r.get(m); !c.zero() {
			st.Minutes = append(st.Minutes, [5]int64{m, c.received, c.delivered, c.failed, c.dead})
		}
	}
	return json.Marshal(st)
}

func (r *ring) unmarshal(raw []byte) error {
	var st storedRollup
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	if st.Version != 1 {
		return fmt.Errorf("unknown rollup version %d", st.Version)
	}
	for _, m := range st.Minutes {
		if m[0] < 0 {
			return fmt.Errorf("negative minute %d", m[0])
		}
		r.add(m[0], counts{m[1], m[2], m[3], m[4]})
	}
	return nil
}

const rollupKey = "minutes"

// rollups feeds the ring from the node's totals: every second it adds what
// changed since the last look to the current minute (the node's clock), so
// the dashboard never scans events. The ring is saved with the store once a
// minute and when the server closes, so a restart keeps the history; a
// crash loses at most the last minute's counts.
type rollups struct {
	totals func() actors.Totals
	now    func() time.Time
	db     *wal.DB

	mu       sync.Mutex // guards the fields below
	ring     ring
	last     actors.Totals
	dirty    bool
	savedMin int64

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newRollups(db *wal.DB, totals func() actors.Totals, now func() time.Time) (*rollups, error) {
	r := &rollups{totals: totals, now: now, db: db, done: make(chan struct{})}
	raw, err := db.GetConfig(wal.KindRollup, rollupKey)
	switch {
	case errors.Is(err, wal.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if err := r.ring.unmarshal(raw); err != nil {
			return nil, fmt.Errorf("%w: per-minute counts: %v", wal.ErrCorrupt, err)
		}
	}
	r.last = totals()
	r.savedMin = r.minute()
	return r, nil
}

func (r *rollups) minute() int64 { return r.now().Unix() / 60 }

func (r *rollups) start() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-tick.C:
				r.sample()
				if m := r.minute(); m != r.savedAt() {
					r.save(false)
				}
			}
		}
	}()
}

func (r *rollups) savedAt() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.savedMin
}

// sample adds what the totals moved since the last sample to this minute.
func (r *rollups) sample() {
	t := r.totals()
	m := r.minute()
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := totalsDelta(t, r.last); !d.zero() {
		r.ring.add(m, d)
		r.dirty = true
	}
	r.last = t
}

// save writes the ring if it changed; wait makes the write synced before
// it returns (on close), else it joins the next group commit.
func (r *rollups) save(wait bool) {
	r.mu.Lock()
	r.savedMin = r.minute()
	if !r.dirty {
		r.mu.Unlock()
		return
	}
	raw, err := r.ring.marshal(r.savedMin)
	r.dirty = false
	r.mu.Unlock()
	if err != nil {
		return
	}
	b := r.db.NewBatch()
	if err := b.PutConfig(wal.KindRollup, rollupKey, json.RawMessage(raw)); err != nil {
		b.Discard()
		return
	}
	if wait {
		r.db.CommitWait(b)
		return
	}
	r.db.Commit(b, nil)
}

// window answers the last n minutes, the current one included.
func (r *rollups) window(n int) []MinuteCounts {
	r.sample()
	m := r.minute()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ring.window(m, n)
}

// close stops the sampler and saves the ring. Idempotent.
func (r *rollups) close() {
	r.once.Do(func() {
		close(r.done)
		r.wg.Wait()
		r.sample()
		r.save(true)
	})
}

// Minutes answers the node's counts for each of the last n minutes (at
// most RollupMinutes), oldest first, the current minute last.
func (s *Server) Minutes(n int) []MinuteCounts { return s.rollups.window(n) }

func (s *Server) listMinutes(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	n := 60
	for k, v := range r.URL.Query() {
		if k != "minutes" {
			return 0, nil, errBadRequest("unknown_field", k, "unknown query parameter %q", k)
		}
		var err error
		if n, err = strconv.Atoi(v[0]); err != nil || n < 1 || n > RollupMinutes {
			return 0, nil, errBadRequest("invalid_query", "minutes", "must be an integer between 1 and %d", RollupMinutes)
		}
	}
	return http.StatusOK, newPage(s.Minutes(n), ""), nil
}
