// Package refusals tallies refused requests for the audit log.
//
// Refused requests (bad webhook signatures, failed agent authentications,
// bad admin tokens) come from whoever can reach the node, as fast as they
// like. Writing an audit row for each let one client make the node write
// without bound, so they are tallied instead: one row per (action, object,
// reason) per interval, with the count, the first and last time and a few
// of the addresses. A tally holds at most MaxKeys objects per interval;
// refusals for objects past that (an attacker inventing agent ids or
// tokens) share one row per (action, reason) with object id "*", and past
// MaxOverflow of those too, one row per action. So refusals cause at most
// MaxKeys + MaxOverflow + one per action (three today) audit rows per
// interval, however many arrive, each with its fields clipped to MaxText
// bytes of characters JSON writes as themselves: about 63 KB per 10 s
// interval at worst (TestWriteBound measures it). The log gets one line
// per interval with refusals, their counts by action (at most three), never
// a line per refusal.
//
// While the store is below its free-space floor (wal Accepting answers an
// error) the rows are not written at all: that room is for deliveries and
// the audit of what the node itself does. The counts still go to the log
// line (and signature refusals to their metric); one more line says rows
// are being dropped, and one that they are written again when space
// returns. So refusals never write past the floor.
//
// The rows are written in refusal batches (wal NewRefusalBatch), in audit
// blocks of their own that the node expires after its refusal retention
// (serve --refusal-retention, default 7 days, never longer than audit's).
// So the disk they can take is bounded twice: by the floor, and by 6,334
// B/s (TestWriteBound) x 7 days = about 3.8 GB at worst, where audit's 90
// days made it about 49 GB.
//
// It must never block the caller, and never write more than the above.
package refusals

import (
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookops/webhookops/wal"
)

// DefaultInterval is how long refusals are tallied before their
// rows are written.
const DefaultInterval = 10 * time.Second

const (
	MaxKeys = 64 // distinct (action, object, reason) per interval
	// rows for objects past MaxKeys, one per (action, reason); past
	// this many too, one per action with reason "*"
	MaxOverflow = 16
	maxAddrs    = 4   // remote addresses named per row
	MaxText     = 128 // bytes of an id, reason or message kept
	maxAddr     = 64  // bytes of an address kept (ip:port is at most 47)
)

// Rejection is one refused request.
type Rejection struct {
	Action     string // e.g. "event.signature_rejected", "agent.rejected"
	ObjectType string // "source", "agent"
	ObjectID   string
	Reason     string // a short stable code
	Message    string // optional human text; the first of the interval is kept
	RemoteAddr string
	At         time.Time
}

type key struct{ action, objType, objID, reason string }

type tally struct {
	count       int
	first, last time.Time
	message     string
	addrs       []string
	moreAddrs   bool
}

// window is one interval's tally. It does no I/O.
type window struct {
	tallies map[key]*tally
	objects int // keys with a real object id
}

func newWindow() *window {
	return &window{tallies: make(map[key]*tally)}
}

// add counts r.
func (w *window) add(r Rejection) {
	k := key{r.Action, r.ObjectType, clip(r.ObjectID), clip(r.Reason)}
	t := w.tallies[k]
	if t == nil {
		if w.objects >= MaxKeys {
			k.objID = "*"
			t = w.tallies[k]
		}
		if t == nil && len(w.tallies) >= MaxKeys+MaxOverflow {
			k.reason = "*"
			t = w.tallies[k]
		}
		if t == nil {
			t = &tally{first: r.At, message: clip(r.Message)}
			w.tallies[k] = t
			if k.objID != "*" {
				w.objects++
			}
		}
	}
	t.count++
	t.last = r.At
	if r.RemoteAddr != "" && !t.moreAddrs {
		seen := false
		for _, a := range t.addrs {
			if a == clipTo(r.RemoteAddr, maxAddr) {
				seen = true
				break
			}
		}
		switch {
		case seen:
		case len(t.addrs) < maxAddrs:
			t.addrs = append(t.addrs, clipTo(r.RemoteAddr, maxAddr))
		default:
			t.moreAddrs = true
		}
	}
}

// rows are the window's audit entries, in a stable order.
func (w *window) rows() []wal.AuditEntry {
	keys := make([]key, 0, len(w.tallies))
	for k := range w.tallies {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.action != b.action {
			return a.action < b.action
		}
		if a.objID != b.objID {
			return a.objID < b.objID
		}
		return a.reason < b.reason
	})
	out := make([]wal.AuditEntry, 0, len(keys))
	for _, k := range keys {
		t := w.tallies[k]
		d := map[string]string{
			"reason":   k.reason,
			"count":    strconv.Itoa(t.count),
			"first_at": t.first.UTC().Format(time.RFC3339Nano),
			"last_at":  t.last.UTC().Format(time.RFC3339Nano),
		}
		if t.message != "" {
			d["message"] = t.message
		}
		if len(t.addrs) > 0 {
			addrs := strings.Join(t.addrs, ", ")
			if t.moreAddrs {
				addrs += ", ..."
			}
			d["remote_addrs"] = addrs
		}
		out = append(out, wal.AuditEntry{At: t.last.UTC(), Action: k.action, ObjectType: k.objType, ObjectID: k.objID, Detail: d})
	}
	return out
}

// totals are the window's refusals counted by action, as log attributes
// ("event.signature_rejected", 5000, ...), actions in order.
func (w *window) totals() []any {
	by := map[string]int{}
	for k, t := range w.tallies {
		by[k.action] += t.count
	}
	var out []any
	for _, a := range slices.Sorted(maps.Keys(by)) {
		out = append(out, a, by[a])
	}
	return out
}

// clip bounds what a sender controls (agent ids, token prefixes) in a
// row: at most MaxText bytes, and only characters JSON writes as one
// byte (anything else becomes '?'), so a row's size is known.
func clip(s string) string { return clipTo(s, MaxText) }

func clipTo(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	for i := 0; i < len(s); i++ {
		if !plainJSON(s[i]) {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if !plainJSON(b[j]) {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}

// plainJSON: the store's JSON writes c as itself.
func plainJSON(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// Tally counts refusals and writes each interval's rows in one batch.
type Tally struct {
	db       *wal.DB
	log      *slog.Logger
	interval time.Duration

	mu     sync.Mutex // guards win and counts
	win    *window
	counts map[string]uint64 // every refusal since start, by action (for /metrics)

	// dropping: the last flush found the store below its floor and wrote
	// no rows. Only the loop reads and writes it.
	dropping bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start starts a tally writing to db every interval (DefaultInterval if
// zero). Close it after the last Add.
func Start(db *wal.DB, interval time.Duration, log *slog.Logger) *Tally {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.Default()
	}
	t := &Tally{db: db, log: log, interval: interval, win: newWindow(), counts: make(map[string]uint64), stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

// Add counts a refused request. It never blocks and never writes by
// itself. A zero At is now.
func (t *Tally) Add(r Rejection) {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	t.mu.Lock()
	t.win.add(r)
	if _, ok := t.counts[r.Action]; ok || len(t.counts) < maxCountedActions {
		t.counts[r.Action]++
	}
	t.mu.Unlock()
}

// maxCountedActions bounds the counter's label values. Actions are the
// callers' constants, not client input; the bound only keeps a mistake
// from growing /metrics.
const maxCountedActions = 32

var refusalsDesc = prometheus.NewDesc("webhookops_refusals_total",
	"Refused requests by action (event.signature_rejected, agent.rejected, auth.rejected), counted whether or not their audit rows are written (none below the free-space floor).",
	[]string{"action"}, nil)

// Describe and Collect make the tally a Prometheus collector of
// webhookops_refusals_total.
func (t *Tally) Describe(ch chan<- *prometheus.Desc) { ch <- refusalsDesc }

// Collect: see Describe.
func (t *Tally) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	counts := maps.Clone(t.counts)
	t.mu.Unlock()
	for action, n := range counts {
		ch <- prometheus.MustNewConstMetric(refusalsDesc, prometheus.CounterValue, float64(n), action)
	}
}

func (t *Tally) loop() {
	defer close(t.done)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			t.flush(true)
			return
		case <-tick.C:
			t.flush(false)
		}
	}
}

// flush writes the current window's rows, waiting for them only when the
// tally closes.
func (t *Tally) flush(wait bool) {
	t.mu.Lock()
	w := t.win
	if len(w.tallies) == 0 {
		t.mu.Unlock()
		return
	}
	t.win = newWindow()
	t.mu.Unlock()
	t.log.Warn("refused requests", w.totals()...)
	// Below the free-space floor the room left is for deliveries and the
	// audit of what the node does, not for what strangers make it write:
	// the rows are dropped (the counts are in the line above and in the
	// signature metrics), said once, until space returns.
	if err := t.db.Accepting(); err != nil {
		if !t.dropping {
			t.dropping = true
			t.log.Warn("not writing refusal rows until the store accepts again; their counts are logged each interval", "err", err)
		}
		return
	}
	if t.dropping {
		t.dropping = false
		t.log.Info("writing refusal rows again")
	}
	b := t.db.NewRefusalBatch() // kept for the refusal retention, not audit's
	for _, e := range w.rows() {
		b.Audit(e)
	}
	if wait {
		if err := t.db.CommitWait(b); err != nil {
			t.log.Warn("could not write the last refusal tallies", "err", err)
		}
		return
	}
	t.db.Commit(b, nil)
}

// Close writes what is tallied and stops. Idempotent.
func (t *Tally) Close() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}
