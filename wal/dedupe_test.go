package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// waitFilterLive waits until every partition's dedupe filter has been
// scanned and answers lookups.
func waitFilterLive(t *testing.T, db *DB) {
	t.Helper()
	waitUntil(t, "dedupe filter live", func() bool {
		for p := range db.filter.parts {
			pf := &db.filter.parts[p]
			pf.mu.Lock()
			live := pf.live != nil && !pf.pending && pf.building == nil
			pf.mu.Unlock()
			if !live {
				return false
			}
		}
		return true
	})
}

func putDedupeKeys(t *testing.T, db *DB, source string, keys []string, at time.Time) {
	t.Helper()
	b := db.NewBatch()
	for i, k := range keys {
		b.PutDedupe(db.EventPartition(source, k), source, k, uint64(i+1), at)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
}

// answeredFromMemory counts the keys whose lookup the filter answers
// "certainly not there" without reading Pebble.
func answeredFromMemory(db *DB, source string, keys []string) int {
	n := 0
	for _, k := range keys {
		p := db.EventPartition(source, k)
		if !db.filter.mayContain(p, dedupeKey(p, source, k), unixNanos(time.Time{})) {
			n++
		}
	}
	return n
}

func keysN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// A key never written is answered from memory, and every written key is
// still found, before and after a reopen (where the filter is built from
// what is on disk).
func TestDedupeFilterAnswersNewKeysFromMemory(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	at := time.Unix(1700000000, 0)
	written := keysN("seen", 1000)
	putDedupeKeys(t, db, "src", written, at)
	waitFilterLive(t, db)
	fresh := keysN("new", 1000)
	if n := answeredFromMemory(db, "src", fresh); n < 950 {
		t.Fatalf("the filter answered %d of 1000 new keys; want nearly all", n)
	}
	check := func(db *DB) {
		t.Helper()
		for i, k := range written {
			seq, got, err := db.GetDedupe(db.EventPartition("src", k), "src", k)
			if err != nil || seq != uint64(i+1) || !got.Equal(at) {
				t.Fatalf("key %s: seq %d at %v err %v", k, seq, got, err)
			}
		}
		for _, k := range fresh {
			if _, _, err := db.GetDedupe(db.EventPartition("src", k), "src", k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("new key %s: %v, want ErrNotFound", k, err)
			}
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	check(db) // while the scan may still run: lookups read Pebble
	waitFilterLive(t, db)
	check(db)
	if n := answeredFromMemory(db, "src", fresh); n < 950 {
		t.Fatalf("after reopen the filter answered %d of 1000 new keys", n)
	}
}

// Keys written while the filter is being built from disk are not lost.
func TestDedupeFilterKeepsKeysWrittenDuringItsScan(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	at := time.Unix(1700000000, 0)
	putDedupeKeys(t, db, "src", keysN("old", 20000), at)
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	during := keysN("during", 2000)
	for i := 0; i < len(during); i += 100 {
		putDedupeKeys(t, db, "src2", during[i:i+100], at)
	}
	waitFilterLive(t, db)
	for _, k := range during {
		if _, _, err := db.GetDedupe(db.EventPartition("src2", k), "src2", k); err != nil {
			t.Fatalf("key %s written during the scan: %v", k, err)
		}
	}
}

// Keys that arrive by replication (ApplyOps) or by a restored partition are
// found at once, as Pebble would find them.
func TestDedupeFilterSeesReplicatedAndRestoredKeys(t *testing.T) {
	src := openTest(t, t.TempDir())
	defer src.Close()
	dst := openTest(t, t.TempDir())
	defer dst.Close()
	waitFilterLive(t, dst)
	at := time.Unix(1700000000, 0)

	// Replicated writes.
	part := src.EventPartition("src", "a")
	b := src.NewBatch()
	b.PutDedupe(part, "src", "a", 7, at)
	enc, err := b.EncodeOps(part)
	b.Discard()
	if err != nil {
		t.Fatal(err)
	}
	rb := dst.NewReplicaBatch(part)
	if err := rb.ApplyOps(enc); err != nil {
		t.Fatal(err)
	}
	if err := rb.CommitApplied(1); err != nil {
		t.Fatal(err)
	}
	if seq, _, err := dst.GetDedupe(part, "src", "a"); err != nil || seq != 7 {
		t.Fatalf("replicated key: seq %d err %v", seq, err)
	}

	// A restored partition: every key of the snapshot, none of what the
	// partition held before.
	var inPart []string
	for i := 0; len(inPart) < 500; i++ {
		if k := fmt.Sprintf("r-%d", i); src.EventPartition("src", k) == part {
			inPart = append(inPart, k)
		}
	}
	putDedupeKeys(t, src, "src", inPart, at)
	snap, err := src.PartitionSnapshot(part)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.WriteTo(&buf, nil); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	putDedupeKeys(t, dst, "src", []string{"gone"}, at)
	gonePart := dst.EventPartition("src", "gone")
	if err := dst.RestorePartition(part, &buf, nil); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for _, k := range inPart {
			if _, _, err := dst.GetDedupe(part, "src", k); err != nil {
				t.Fatalf("restored key %s: %v", k, err)
			}
		}
		if gonePart == part {
			if _, _, err := dst.GetDedupe(part, "src", "gone"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("key replaced by the restore: %v", err)
			}
		}
	}
	check()
	waitFilterLive(t, dst)
	check()
}

// GetDedupeAfter: a key received at or before `after` reads as absent; the
// filters holding only such keys are dropped, and a later lookup that
// reaches further back still finds them (in Pebble).
func TestGetDedupeAfterWindowAndHorizon(t *testing.T) {
	const maxKeys = 1024
	db, err := Open(t.TempDir(), Config{Partitions: 4, CacheSize: 8 << 20, filterMaxKeys: maxKeys})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFilterLive(t, db)
	t0 := time.Unix(1700000000, 0)
	old := keysN("old", 4*3*maxKeys) // three filters' worth per partition
	putDedupeKeys(t, db, "src", old, t0)
	recent := keysN("recent", 1000)
	putDedupeKeys(t, db, "src", recent, t0.Add(time.Hour))
	before := db.filter.used.Load()
	for _, k := range recent {
		p := db.EventPartition("src", k)
		if _, _, err := db.GetDedupeAfter(p, "src", k, t0.Add(30*time.Minute)); err != nil {
			t.Fatalf("recent key %s: %v", k, err)
		}
	}
	for _, k := range old[:1000] {
		p := db.EventPartition("src", k)
		if _, _, err := db.GetDedupeAfter(p, "src", k, t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("key received at the window's start %s: %v, want ErrNotFound", k, err)
		}
		if _, _, err := db.GetDedupeAfter(p, "src", k, t0.Add(30*time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("key older than the window %s: %v, want ErrNotFound", k, err)
		}
	}
	if after := db.filter.used.Load(); after >= before {
		t.Fatalf("filters of keys older than every lookup were kept: %d bytes before, %d after", before, after)
	}
	for _, k := range old {
		p := db.EventPartition("src", k)
		if _, _, err := db.GetDedupeAfter(p, "src", k, t0.Add(-time.Minute)); err != nil {
			t.Fatalf("old key %s behind the horizon: %v", k, err)
		}
		if _, _, err := db.GetDedupe(p, "src", k); err != nil {
			t.Fatalf("old key %s: %v", k, err)
		}
	}
}

// A budget too small for the keys changes no answer, only where it comes
// from; with no filter at all every lookup reads Pebble.
func TestDedupeFilterBudget(t *testing.T) {
	for _, budget := range []int64{-1, 1, 3000, 1 << 20} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			db, err := Open(t.TempDir(), Config{Partitions: 4, CacheSize: 8 << 20, DedupeFilterBytes: budget, filterMaxKeys: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if budget > 0 {
				waitFilterLive(t, db)
			}
			at := time.Unix(1700000000, 0)
			keys := keysN("k", 8000)
			for i := 0; i < len(keys); i += 1000 {
				putDedupeKeys(t, db, "src", keys[i:i+1000], at.Add(time.Duration(i)*time.Second))
			}
			for i, k := range keys {
				p := db.EventPartition("src", k)
				want := at.Add(time.Duration(i/1000*1000) * time.Second)
				if _, got, err := db.GetDedupeAfter(p, "src", k, at.Add(-time.Hour)); err != nil || !got.Equal(want) {
					t.Fatalf("key %s: at %v err %v", k, got, err)
				}
			}
			for _, k := range keysN("absent", 500) {
				p := db.EventPartition("src", k)
				if _, _, err := db.GetDedupeAfter(p, "src", k, at.Add(-time.Hour)); !errors.Is(err, ErrNotFound) {
					t.Fatalf("absent key %s: %v", k, err)
				}
			}
			if budget > 0 && db.filter.used.Load() > budget {
				t.Fatalf("filters hold %d bytes over a budget of %d", db.filter.used.Load(), budget)
			}
		})
	}
}

// Random puts (overwrites included) and lookups at random windows, against
// a map: the filter never turns a key on disk into "not found", whether it
// was filled by writes or by a scan of the disk (a reopen every ten rounds),
// whose filters hold keys of any age.
func TestDedupeFilterAgainstAModel(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Partitions: 2, CacheSize: 8 << 20, DedupeFilterBytes: 16 << 10, filterMaxKeys: 1024}
	db, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	waitFilterLive(t, db)
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]time.Time{}
	now := time.Unix(1700000000, 0)
	for round := 1; round <= 40; round++ {
		b := db.NewBatch()
		for i := 0; i < 500; i++ {
			k := fmt.Sprint(rng.IntN(15000))
			at := now.Add(-time.Duration(rng.IntN(600)) * time.Second) // clocks are not monotonic
			b.PutDedupe(db.EventPartition("s", k), "s", k, 1, at)
			model[k] = at
			now = now.Add(100 * time.Millisecond)
		}
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		if round%10 == 0 {
			db.Close()
			if db, err = Open(dir, cfg); err != nil {
				t.Fatal(err)
			}
			waitFilterLive(t, db)
		}
		for i := 0; i < 500; i++ {
			k := fmt.Sprint(rng.IntN(20000))
			after := now.Add(-time.Duration(rng.IntN(3000)) * time.Second)
			_, got, err := db.GetDedupeAfter(db.EventPartition("s", k), "s", k, after)
			want, ok := model[k]
			if ok && want.After(after) {
				if err != nil || !got.Equal(want) {
					t.Fatalf("round %d key %s after %v: at %v err %v, want %v", round, k, after, got, err, want)
				}
			} else if !errors.Is(err, ErrNotFound) {
				t.Fatalf("round %d key %s after %v: err %v, want ErrNotFound", round, k, after, err)
			}
		}
	}
}

// A filter's newest receive time says nothing of the filters before it
// (a scan fills them in key order, and clocks step back): a lookup skips
// only the filters too old for it, never the rest of the chain.
func TestDedupeFilterChecksEveryFilterRecentEnough(t *testing.T) {
	f := newDedupeFilter(1, 1<<20, 4)
	pf := &f.parts[0]
	pf.live, pf.building = newChain(), nil
	key := func(s string) []byte { return dedupeKey(0, "src", s) }
	f.add(0, key("new"), 100) // the first filter: one new key, three old
	for _, k := range []string{"a", "b", "c"} {
		f.add(0, key(k), 1)
	}
	f.add(0, key("d"), 1) // the second filter: old keys only
	if n := len(pf.live.blooms); n != 2 {
		t.Fatalf("%d filters, want 2", n)
	}
	if !f.mayContain(0, key("new"), 50) {
		t.Fatal(`a key received after the lookup's start, in an older filter, answered "not there"`)
	}
	if !f.mayContain(0, key("d"), 0) {
		t.Fatal(`a key in the newest filter answered "not there"`)
	}
}
