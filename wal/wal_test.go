package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

func openTest(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Config{Partitions: 8, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestEventRoundTripAndRecovery(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	var ids []string
	for i := 0; i < 20; i++ {
		e := &Event{
			Partition:    db.EventPartition("src", string(rune('a'+i))),
			Seq:          db.NextSeq(),
			Source:       "src",
			IdemKey:      string(rune('a' + i)),
			EventType:    "push",
			ReceivedAt:   time.Unix(1700000000, int64(i)).UTC(),
			Headers:      [][2]string{{"Content-Type", "application/json"}, {"X-A", "\xff\xfe"}},
			Body:         []byte{0, 1, 2, 0xff, byte(i)},
			Destinations: []string{"d1", "d2"},
		}
		b := db.NewBatch()
		b.PutEvent(e)
		b.PutDedupe(e.Partition, e.Source, e.IdemKey, e.Seq, e.ReceivedAt)
		b.PutOutbox(e.Partition, e.Seq, "d1")
		b.PutQueue("d2", uint64(i+1), e.Partition, e.Seq)
		b.Audit(AuditEntry{Action: "event.received", ObjectType: "event", ObjectID: e.ID()})
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal("second Close:", err)
	}

	db = openTest(t, dir)
	defer db.Close()
	if got := db.NextSeq(); got != 21 {
		t.Fatalf("sequence resumed at %d, want 21", got)
	}
	e, err := db.GetEventByID(ids[3])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Body, []byte{0, 1, 2, 0xff, 3}) || e.Headers[1][1] != "\xff\xfe" || e.Destinations[1] != "d2" {
		t.Fatalf("event not byte-exact: %+v", e)
	}
	evs, next, err := db.ListEvents(0, 7, nil)
	if err != nil || len(evs) != 7 || next == 0 {
		t.Fatalf("ListEvents: %d %d %v", len(evs), next, err)
	}
	seen := map[uint64]bool{}
	var prev uint64 = 1 << 62
	for cursor := uint64(0); ; {
		page, n, err := db.ListEvents(cursor, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.Seq >= prev || seen[e.Seq] {
				t.Fatalf("pagination out of order or repeated at %d", e.Seq)
			}
			prev = e.Seq
			seen[e.Seq] = true
		}
		if n == 0 {
			break
		}
		cursor = n
	}
	if len(seen) != 20 {
		t.Fatalf("pagination saw %d events, want 20", len(seen))
	}
	outbox := 0
	for p := 0; p < db.Partitions(); p++ {
		db.ScanOutbox(uint16(p), func(OutboxEntry) { outbox++ })
	}
	if outbox != 20 {
		t.Fatalf("outbox has %d, want 20", outbox)
	}
	dests, err := db.DestsWithPending()
	if err != nil || len(dests) != 1 || dests[0] != "d2" {
		t.Fatalf("DestsWithPending = %v, %v", dests, err)
	}
	page, err := db.QueuePage("d2", 5, 3)
	if err != nil || len(page) != 3 || page[0].QSeq != 6 {
		t.Fatalf("QueuePage = %+v, %v", page, err)
	}
	if last, _ := db.LastQSeq("d2"); last != 20 {
		t.Fatalf("LastQSeq = %d", last)
	}
	audit, _, err := db.ListAudit(0, 100, nil)
	if err != nil || len(audit) != 20 || audit[0].Seq != 20 {
		t.Fatalf("audit: %d entries, %v", len(audit), err)
	}
	if _, err := db.GetEventByID("evt_nonsense"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	b := db.NewBatch()
	if err := b.PutSource(model.Source{Slug: "gh", Provider: "github", Secrets: []string{"topsecret-value"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutAgent(model.Agent{ID: "dev", Secret: "agent-secret-value"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	raw, _ := db.GetConfig(KindSource, "gh")
	if bytes.Contains(raw, []byte("topsecret-value")) {
		t.Fatal("source secret stored in clear")
	}
	db.Close()
	fi, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key mode: %v %v", fi, err)
	}
	db = openTest(t, dir)
	defer db.Close()
	srcs, err := db.Sources()
	if err != nil || len(srcs) != 1 || srcs[0].Secrets[0] != "topsecret-value" {
		t.Fatalf("Sources = %+v, %v", srcs, err)
	}
	agents, err := db.Agents()
	if err != nil || agents[0].Secret != "agent-secret-value" {
		t.Fatalf("Agents = %+v, %v", agents, err)
	}
}

func TestDecodeEventNeverPanics(t *testing.T) {
	e := &Event{Source: "s", IdemKey: "k", Headers: [][2]string{{"a", "b"}}, Body: []byte("body"), Destinations: []string{"d"}}
	enc := appendEvent(nil, e)
	for i := 0; i < len(enc); i++ {
		if _, err := decodeEvent(0, 1, enc[:i]); err == nil {
			t.Fatalf("prefix %d decoded without error", i)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(appendEvent(nil, &Event{Source: "s", IdemKey: "k", Body: []byte("x")}))
	f.Add(appendEvent(nil, &Event{Source: "gh", IdemKey: "id", EventType: "push", ReceivedAt: time.Unix(1700000000, 5),
		Headers: [][2]string{{"A", "1"}, {"B", "2"}}, Destinations: []string{"x", "y"}, Body: []byte(`{"a":1}`)}))
	f.Add([]byte{eventFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEvent(0, 1, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := decodeEvent(0, 1, appendEvent(nil, e))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if err := sameEvent(again, e); err != nil {
			t.Fatalf("re-encode differs: %v", err)
		}
	})
}

func TestExpireEventsKeepsPending(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	old := time.Now().Add(-48 * time.Hour)
	put := func(key string, at time.Time, status string) *Event {
		e := &Event{Partition: db.EventPartition("s", key), Seq: db.NextSeq(), Source: "s", IdemKey: key, ReceivedAt: at, Destinations: []string{"d"}}
		b := db.NewBatch()
		b.PutEvent(e)
		b.PutDedupe(e.Partition, "s", key, e.Seq, at)
		if status != "" {
			b.PutDelivery(e.Seq, &Delivery{Destination: "d", EventID: e.ID(), Status: status})
		}
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		return e
	}
	delivered := put("a", old, StatusDelivered)
	dead := put("b", old, StatusDead)
	pending := put("c", old, "")
	fresh := put("d", time.Now(), StatusDelivered)
	x, err := db.ExpireEvents(time.Now().Add(-24*time.Hour), 100)
	n := x.Events
	if err != nil || n != 2 {
		t.Fatalf("expired %d, %v; want 2", n, err)
	}
	for _, e := range []*Event{delivered, dead} {
		if _, err := db.GetEvent(e.Partition, e.Seq); !errors.Is(err, ErrNotFound) {
			t.Fatalf("event %s survived: %v", e.ID(), err)
		}
	}
	for _, e := range []*Event{pending, fresh} {
		if _, err := db.GetEvent(e.Partition, e.Seq); err != nil {
			t.Fatalf("event %s expired: %v", e.ID(), err)
		}
	}
	if ids, _, _ := db.ListDead("d", 0, 10); len(ids) != 0 {
		t.Fatalf("dead-letter entries left: %v", ids)
	}
}

func TestExpireAudit(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	old := time.Now().Add(-48 * time.Hour)
	b := db.NewBatch()
	for i := range 30 {
		b.Audit(AuditEntry{At: old.Add(time.Duration(i) * time.Minute), Action: "old", ObjectType: "x", ObjectID: fmt.Sprint(i)})
	}
	for i := range 5 {
		b.Audit(AuditEntry{Action: "new", ObjectType: "x", ObjectID: fmt.Sprint(i)})
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-24 * time.Hour)
	if n, err := db.ExpireAudit(cutoff, 20); err != nil || n != 20 {
		t.Fatalf("first slice: %d %v, want 20", n, err)
	}
	if n, err := db.ExpireAudit(cutoff, 20); err != nil || n != 10 {
		t.Fatalf("second slice: %d %v, want 10", n, err)
	}
	if n, err := db.ExpireAudit(cutoff, 20); err != nil || n != 0 {
		t.Fatalf("nothing left: %d %v", n, err)
	}
	all, _, err := db.ListAudit(0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range all {
		actions = append(actions, e.Action)
	}
	// Newest first: two sweep records, then the five new entries.
	want := "retention.audit_expired retention.audit_expired new new new new new"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("left: %s, want %s", got, want)
	}
}
