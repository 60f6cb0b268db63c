package wal

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuditEntryRoundTrip(t *testing.T) {
	entries := []AuditEntry{
		{At: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Action: "event.received", ObjectType: "event", ObjectID: "evt_1",
			Detail: map[string]string{"source": "gh", "idempotency_key": "k", "event_type": "push"}},
		{At: time.Unix(0, 0).UTC(), Action: "a\"b\\c", ObjectType: "<x>&", ObjectID: "\x00\x1f\u2028\u2029é\xff",
			Actor: "token:ci", ReplayID: "rpl_1", Detail: map[string]string{"z": "1", "a": "\xfe\n", "m": "ok", "": ""}},
		{At: time.Unix(-5, 0).UTC(), Action: "", ObjectType: "", ObjectID: ""},
		{At: time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), Action: "event", ObjectType: "event", ObjectID: "event"},
	}
	for i, e := range entries {
		got, err := decodeAuditEntry(appendAuditEntry(nil, &e), uint64(i+7))
		e.Seq = uint64(i + 7)
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("entry %d: got %+v, %v\nwant %+v", i, got, err, e)
		}
	}
}

// The words written as one byte are part of the format: changing or
// reordering one changes what old records read as.
func TestWordsPinned(t *testing.T) {
	want := "event event.received event.duplicate source idempotency_key event_type " +
		"delivery.delivered delivery.attempt_failed delivery.dead_lettered destination " +
		"attempt status_code error replay event.signature_rejected reason pending delivered dead"
	if got := strings.Join(words[:], " "); got != want {
		t.Fatalf("words changed:\n got %s\nwant %s", got, want)
	}
	for i, w := range words {
		if wordIndex(w) != i {
			t.Fatalf("wordIndex(%q) = %d, want %d", w, wordIndex(w), i)
		}
		if wordIndex(w+"x") != -1 || wordIndex(w[1:]) != -1 {
			t.Fatalf("wordIndex matches a neighbour of %q", w)
		}
	}
	if auditBlockFormat != 0x01 || deliveryFormat != 0x01 {
		t.Fatalf("formats: audit %d, delivery %d", auditBlockFormat, deliveryFormat)
	}
	e := AuditEntry{At: time.Unix(0, 1), Action: "event.received", ObjectType: "event", ObjectID: "x"}
	if got := fmt.Sprintf("%x", appendAuditEntry(nil, &e)); got != "0203010278000000" {
		t.Fatalf("encoding = %s", got)
	}
}

func FuzzAuditEntry(f *testing.F) {
	f.Add("event.received", "evt_1", "k", "v\xff", []byte{0x02, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, action, id, k, v string, raw []byte) {
		e := AuditEntry{Seq: 9, At: time.Unix(1, 2).UTC(), Action: action, ObjectType: "event", ObjectID: id, Detail: map[string]string{k: v}}
		got, err := decodeAuditEntry(appendAuditEntry(nil, &e), 9)
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("got %+v, %v\nwant %+v", got, err, e)
		}
		decodeAuditEntry(raw, 1)                                               // never panics
		parseAuditBlock(auditKey(1), append([]byte{auditBlockFormat}, raw...)) // nor this
	})
}

func auditKeys(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	lo := []byte{prefixAudit}
	if err := db.scan(lo, prefixEnd(lo), func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// The entries of one group commit share one key, numbered in commit order,
// and read back one by one, pages cut anywhere inside a block.
func TestAuditEntriesOfAGroupShareOneKey(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	// Hold the committer inside its first group (the fault hook runs on
	// its goroutine before a group reaches Pebble) so that every batch
	// below waits in its queue and joins the next group. Holding a
	// callback instead held only the sync loop: the committer went on
	// applying groups of whatever had arrived, up to the pipeline's depth.
	release, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.SetCommitFault(func() error {
		once.Do(func() { close(held); <-release })
		return nil
	})
	db.Commit(db.NewBatch(), nil)
	<-held
	var wg sync.WaitGroup
	var mu sync.Mutex
	var order []string
	for i := range 50 {
		b := db.NewBatch()
		b.Audit(AuditEntry{Action: "event.received", ObjectType: "event", ObjectID: fmt.Sprint(i)})
		b.Audit(AuditEntry{Action: "second", ObjectType: "event", ObjectID: fmt.Sprint(i)})
		wg.Add(1)
		db.Commit(b, func(err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, fmt.Sprint(i))
			mu.Unlock()
			wg.Done()
		})
	}
	close(release)
	wg.Wait()
	if n := auditKeys(t, db); n > 3 {
		t.Fatalf("100 entries in %d keys, want them grouped", n)
	}
	all, next, err := db.ListAudit(0, 1000, nil)
	if err != nil || next != 0 || len(all) != 100 {
		t.Fatalf("ListAudit: %d entries, next %d, %v", len(all), next, err)
	}
	for i, e := range all { // newest first
		j := len(all) - 1 - i
		if e.Seq != uint64(j+1) || e.ObjectID != order[j/2] || (j%2 == 1) != (e.Action == "second") {
			t.Fatalf("entry %d: %+v; want seq %d of event %s", i, e, j+1, order[j/2])
		}
	}
	// Pages of 7 cut through the block and meet every entry once.
	var seen []uint64
	for before := uint64(0); ; {
		page, next, err := db.ListAudit(before, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.Seq)
		}
		if next == 0 {
			break
		}
		before = next
	}
	if len(seen) != 100 || seen[0] != 100 || seen[99] != 1 {
		t.Fatalf("paged: %d entries, %v", len(seen), seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]-1 {
			t.Fatalf("paged out of order at %d: %v", i, seen)
		}
	}
	// After a reopen, sequences go on after the last entry of the last block.
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	b := db.NewBatch()
	b.Audit(AuditEntry{Action: "after", ObjectType: "x", ObjectID: "1"})
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	if top, _, err := db.ListAudit(0, 1, nil); err != nil || top[0].Seq != 101 || top[0].Action != "after" {
		t.Fatalf("after reopen: %+v %v", top, err)
	}
}

// A data dir written before audit blocks (one JSON value per entry) reads
// on, expires, and its sequences go on.
func TestAuditReadsEntriesWrittenOneKeyEach(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	old := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	b := db.NewBatch()
	for i := 1; i <= 3; i++ {
		raw, _ := json.Marshal(AuditEntry{Seq: uint64(i), At: old, Action: "event.received", ObjectType: "event",
			ObjectID: fmt.Sprint(i), Detail: map[string]string{"source": "s"}})
		b.b.Set(auditKey(uint64(i)), raw, nil)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	b = db.NewBatch()
	b.Audit(AuditEntry{Action: "new", ObjectType: "x", ObjectID: "4"})
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	all, _, err := db.ListAudit(0, 10, nil)
	if err != nil || len(all) != 4 {
		t.Fatalf("ListAudit: %+v %v", all, err)
	}
	for i, e := range all {
		if e.Seq != uint64(4-i) || e.ObjectID != fmt.Sprint(4-i) {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if all[3].Detail["source"] != "s" || !all[3].At.Equal(old) {
		t.Fatalf("legacy entry: %+v", all[3])
	}
	if n, err := db.ExpireAudit(time.Now().Add(-24*time.Hour), 2); err != nil || n != 2 {
		t.Fatalf("ExpireAudit: %d %v", n, err)
	}
	if n, err := db.ExpireAudit(time.Now().Add(-24*time.Hour), 2); err != nil || n != 1 {
		t.Fatalf("ExpireAudit: %d %v", n, err)
	}
	all, _, _ = db.ListAudit(0, 10, nil)
	var got []string
	for _, e := range all {
		got = append(got, e.Action)
	}
	if strings.Join(got, " ") != "retention.audit_expired retention.audit_expired new" {
		t.Fatalf("left: %v", got)
	}
}

// Encoding an entry allocates nothing once the buffer has room: it runs
// twice for every event (received, delivered).
func TestAuditEntryEncodingAllocatesNothing(t *testing.T) {
	e := AuditEntry{At: time.Unix(1700000000, 0), Action: "event.received", ObjectType: "event", ObjectID: "evt_1",
		Detail: map[string]string{"source": "gh", "idempotency_key": "k", "event_type": "push"}}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = appendAuditEntry(buf[:0], &e) }); n != 0 {
		t.Fatalf("%v allocations per entry", n)
	}
}
