package wal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// retentionStore writes events with given delivery outcomes.
type retentionStore struct {
	t  *testing.T
	db *DB
}

// retentionCutoff is the cutoff most tests sweep with.
var retentionCutoff = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func newRetentionStore(t *testing.T) retentionStore {
	db := openTest(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	return retentionStore{t, db}
}

func (s retentionStore) put(key string, at time.Time, outcomes map[string]string) *Event {
	s.t.Helper()
	e := &Event{Partition: s.db.EventPartition("s", key), Seq: s.db.NextSeq(), Source: "s", IdemKey: key, ReceivedAt: at}
	for d := range outcomes {
		e.Destinations = append(e.Destinations, d)
	}
	b := s.db.NewBatch()
	b.PutEvent(e)
	b.PutDedupe(e.Partition, "s", key, e.Seq, at)
	for d, status := range outcomes {
		if status != "" {
			b.PutDelivery(e.Seq, &Delivery{Destination: d, EventID: e.ID(), Status: status})
		}
	}
	if err := s.db.CommitWait(b); err != nil {
		s.t.Fatal(err)
	}
	return e
}

func (s retentionStore) exists(e *Event) bool {
	s.t.Helper()
	_, err := s.db.GetEvent(e.Partition, e.Seq)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.t.Fatal(err)
	}
	return err == nil
}

func TestExpireEventsDecidesPerEvent(t *testing.T) {
	s := newRetentionStore(t)
	db, cutoff := s.db, retentionCutoff
	old := cutoff.Add(-time.Hour)
	tests := []struct {
		name     string
		at       time.Time
		outcomes map[string]string
		expired  bool
	}{
		{"no destinations", old, nil, true},
		{"all delivered", old, map[string]string{"a": StatusDelivered, "b": StatusDelivered}, true},
		{"delivered and dead", old, map[string]string{"a": StatusDelivered, "b": StatusDead}, true},
		{"one still pending", old, map[string]string{"a": StatusDelivered, "b": StatusPending}, false},
		{"one with no record yet (queued)", old, map[string]string{"a": StatusDelivered, "b": ""}, false},
		{"exactly at the cutoff", cutoff, map[string]string{"a": StatusDelivered}, false},
		{"newer than the cutoff", cutoff.Add(time.Hour), map[string]string{"a": StatusDelivered}, false},
	}
	events := make([]*Event, len(tests))
	for i, tt := range tests {
		events[i] = s.put(fmt.Sprint("k", i), tt.at, tt.outcomes)
	}
	want := 0
	for _, tt := range tests {
		if tt.expired {
			want++
		}
	}
	x, err := db.ExpireEvents(cutoff, 100)
	if n := x.Events; err != nil || n != want {
		t.Fatalf("ExpireEvents = %d, %v; want %d", n, err, want)
	}
	// Only the expired dead letter is reported, for whoever counts them.
	if fmt.Sprint(x.Dead) != "map[b:1]" {
		t.Fatalf("dead letters expired = %v, want map[b:1]", x.Dead)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := events[i]
			if s.exists(e) == tt.expired {
				t.Fatalf("event exists = %v, want %v", tt.expired, !tt.expired)
			}
			_, _, derr := db.GetDedupe(e.Partition, "s", e.IdemKey)
			if tt.expired != errors.Is(derr, ErrNotFound) {
				t.Fatalf("dedupe key: %v (expired %v)", derr, tt.expired)
			}
			for d := range tt.outcomes {
				_, err := db.GetDelivery(d, e.Seq)
				if tt.expired && !errors.Is(err, ErrNotFound) {
					t.Fatalf("delivery record at %s survived: %v", d, err)
				}
			}
		})
	}
	if ids, _, _ := db.ListDead("b", 0, 10); len(ids) != 0 {
		t.Fatalf("dead-letter entries of expired events left: %v", ids)
	}
	// A second sweep finds nothing more.
	if x, err := db.ExpireEvents(cutoff, 100); x.Events != 0 || err != nil {
		t.Fatalf("second sweep expired %+v, %v", x, err)
	}
}

// TestExpireEventsHonoursLimit: each call deletes at most limit events,
// oldest first, and calling again while it returns limit finishes the job.
func TestExpireEventsHonoursLimit(t *testing.T) {
	s := newRetentionStore(t)
	db := s.db
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []*Event
	for i := 0; i < 25; i++ {
		events = append(events, s.put(fmt.Sprint("k", i), base.Add(time.Duration(i)*time.Second), map[string]string{"a": StatusDelivered}))
	}
	cutoff := base.Add(20 * time.Second) // events 0..19 are old enough
	var calls []int
	for {
		x, err := db.ExpireEvents(cutoff, 7)
		n := x.Events
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, n)
		if n < 7 {
			break
		}
	}
	if fmt.Sprint(calls) != "[7 7 6]" {
		t.Fatalf("per-call counts %v, want [7 7 6]", calls)
	}
	for i, e := range events {
		if s.exists(e) != (i >= 20) {
			t.Fatalf("event %d exists = %v", i, s.exists(e))
		}
	}
}

// TestExpireEventsKeepsADedupeKeyTakenByANewerEvent: once the window has
// passed, the same idempotency key may belong to a newer event; expiring the
// old event must not free the newer one's key.
func TestExpireEventsKeepsADedupeKeyTakenByANewerEvent(t *testing.T) {
	s := newRetentionStore(t)
	db, cutoff := s.db, retentionCutoff
	old := s.put("same", cutoff.Add(-time.Hour), map[string]string{"a": StatusDelivered})
	newer := s.put("same", cutoff.Add(time.Hour), map[string]string{"a": StatusPending})
	if x, err := db.ExpireEvents(cutoff, 10); x.Events != 1 || err != nil {
		t.Fatalf("ExpireEvents = %+v, %v", x, err)
	}
	if s.exists(old) || !s.exists(newer) {
		t.Fatal("wrong event expired")
	}
	seq, _, err := db.GetDedupe(newer.Partition, "s", "same")
	if err != nil || seq != newer.Seq {
		t.Fatalf("dedupe key now %d, %v; want the newer event %d", seq, err, newer.Seq)
	}
}

// TestExpireEventsKeepsOldPendingAcrossPartitions: an old pending event in
// one partition holds back nothing in another.
func TestExpireEventsKeepsOldPendingAcrossPartitions(t *testing.T) {
	s := newRetentionStore(t)
	db, cutoff := s.db, retentionCutoff
	var pending, done []*Event
	for i := 0; i < 40; i++ {
		status := StatusDelivered
		if i%4 == 0 {
			status = StatusPending
		}
		e := s.put(fmt.Sprint("k", i), cutoff.Add(-time.Duration(40-i)*time.Minute), map[string]string{"a": status})
		if status == StatusPending {
			pending = append(pending, e)
		} else {
			done = append(done, e)
		}
	}
	x, err := db.ExpireEvents(cutoff, 1000)
	if n := x.Events; err != nil || n != len(done) {
		t.Fatalf("ExpireEvents = %d, %v; want %d", n, err, len(done))
	}
	for _, e := range pending {
		if !s.exists(e) {
			t.Fatalf("pending event %s expired", e.ID())
		}
	}
	for _, e := range done {
		if s.exists(e) {
			t.Fatalf("finished event %s kept", e.ID())
		}
	}
}

func TestExpireEventsFailedCommitDeletesNothing(t *testing.T) {
	s := newRetentionStore(t)
	db, cutoff := s.db, retentionCutoff
	e := s.put("k", cutoff.Add(-time.Hour), map[string]string{"a": StatusDead})
	db.SetCommitFault(func() error { return errDisk })
	if x, err := db.ExpireEvents(cutoff, 10); x.Events != 0 || !errors.Is(err, errDisk) {
		t.Fatalf("ExpireEvents under a failing store = %+v, %v", x, err)
	}
	db.SetCommitFault(nil)
	if !s.exists(e) {
		t.Fatal("event deleted by a failed commit")
	}
	if ids, _, _ := db.ListDead("a", 0, 10); len(ids) != 1 {
		t.Fatalf("dead-letter index changed by a failed commit: %v", ids)
	}
}

// Refusal rows (NewRefusalBatch) have their own retention: ExpireRefusals
// deletes them, however their batches were grouped with others in a
// commit, and leaves every other audit entry of the same age alone.
func TestExpireRefusals(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	now := time.Now()
	old := now.Add(-48 * time.Hour)
	refusal := func(at time.Time, id string) *Batch {
		b := db.NewRefusalBatch()
		b.Audit(AuditEntry{At: at, Action: "event.signature_rejected", ObjectType: "source", ObjectID: id})
		return b
	}
	// Committed without waiting, so that groups mix both kinds.
	for i := range 20 {
		b := db.NewBatch()
		b.Audit(AuditEntry{At: old, Action: "config.updated", ObjectType: "source", ObjectID: fmt.Sprint(i)})
		db.Commit(b, nil)
		db.Commit(refusal(old, fmt.Sprint(i)), nil)
	}
	if err := db.CommitWait(refusal(now, "new")); err != nil {
		t.Fatal(err)
	}
	actions := func() map[string]int {
		rows, _, err := db.ListAudit(0, 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, r := range rows {
			m[r.Action+"/"+r.ObjectID]++
			m[r.Action]++
		}
		return m
	}
	total, calls := 0, 0
	for {
		n, err := db.ExpireRefusals(now.Add(-24*time.Hour), 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
		if calls++; calls > 20 {
			t.Fatal("ExpireRefusals does not finish")
		}
	}
	got := actions()
	if total != 20 || got["event.signature_rejected"] != 1 || got["event.signature_rejected/new"] != 1 || got["config.updated"] != 20 {
		t.Fatalf("expired %d refusal rows, want 20; left: %v", total, got)
	}
	if got["retention.refusals_expired"] == 0 {
		t.Fatalf("expiry not audited: %v", got)
	}
	// Audit retention takes the rest of its age; the refusal list follows,
	// so the newer refusal row still expires by its own retention.
	if n, err := db.ExpireAudit(now.Add(-24*time.Hour), 1000); err != nil || n != 20 {
		t.Fatalf("ExpireAudit: %d %v, want 20", n, err)
	}
	if n, err := db.ExpireRefusals(now.Add(time.Hour), 1000); err != nil || n != 1 {
		t.Fatalf("ExpireRefusals after ExpireAudit: %d %v, want 1", n, err)
	}
	if got := actions(); got["event.signature_rejected"] != 0 || got["config.updated"] != 0 {
		t.Fatalf("left: %v", got)
	}
}

// TestExpireEventsDeletesLingeringOutboxEntries: an outbox entry left
// behind by a lost acknowledgement (a cluster member's) goes with its
// expired event, so nothing names the event after it is gone.
func TestExpireEventsDeletesLingeringOutboxEntries(t *testing.T) {
	s := newRetentionStore(t)
	e := s.put("lingering", retentionCutoff.Add(-time.Hour), map[string]string{"a": StatusDelivered, "b": StatusDead})
	b := s.db.NewBatch()
	b.PutOutbox(e.Partition, e.Seq, "a")
	b.PutOutbox(e.Partition, e.Seq, "b")
	if err := s.db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	if x, err := s.db.ExpireEvents(retentionCutoff, 100); err != nil || x.Events != 1 {
		t.Fatalf("ExpireEvents = %+v, %v; want 1 event", x, err)
	}
	var left []string
	if err := s.db.ScanOutbox(e.Partition, func(o OutboxEntry) { left = append(left, o.Dest) }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("outbox entries of the expired event left: %v", left)
	}
}
