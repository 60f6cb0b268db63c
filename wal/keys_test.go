package wal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestKeyLayout pins every key kind byte for byte: these bytes are on disk,
// and a change to any of them orphans every store written before it.
func TestKeyLayout(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		want string // hex
	}{
		{"event", eventKey(0x0102, 0x0304), "70" + "0102" + "65" + "0000000000000304"},
		{"dedupe", dedupeKey(7, "src", "k1"), "70" + "0007" + "6b" + hex.EncodeToString([]byte("src\x00k1"))},
		{"outbox", outboxKey(7, 9, "app"), "70" + "0007" + "6f" + "0000000000000009" + hex.EncodeToString([]byte("app"))},
		{"queue", destKey(3, subQueue, "app", 5), "70" + "0003" + "71" + hex.EncodeToString([]byte("app\x00")) + "0000000000000005"},
		{"delivery", destKey(3, subDelivery, "app", 5), "70" + "0003" + "72" + hex.EncodeToString([]byte("app\x00")) + "0000000000000005"},
		{"dead", destKey(3, subDead, "app", 5), "70" + "0003" + "78" + hex.EncodeToString([]byte("app\x00")) + "0000000000000005"},
		{"audit", auditKey(0x0a0b), "75" + "0000000000000a0b"},
		{"config", configKey(KindDestination, "app"), "63" + "64" + hex.EncodeToString([]byte("app"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(tt.key); got != tt.want {
				t.Fatalf("key = %s, want %s", got, tt.want)
			}
		})
	}
	// The config kinds are on disk too.
	kinds := map[byte]byte{KindSource: 's', KindDestination: 'd', KindAgent: 'a', KindForward: 'f', KindToken: 't', KindReplay: 'y'}
	for k, want := range kinds {
		if k != want {
			t.Errorf("config kind %q changed to %q", want, k)
		}
	}
}

// TestKeysSortNumerically: big-endian sequences make byte order the numeric
// order, which every "oldest first" scan relies on.
func TestKeysSortNumerically(t *testing.T) {
	seqs := []uint64{0, 1, 2, 255, 256, 257, 65535, 65536, 1 << 32, 1<<32 + 1, 1 << 56, math.MaxUint64 - 1, math.MaxUint64}
	kinds := map[string]func(uint64) []byte{
		"event":    func(s uint64) []byte { return eventKey(5, s) },
		"outbox":   func(s uint64) []byte { return outboxKey(5, s, "zzz") },
		"queue":    func(s uint64) []byte { return destKey(5, subQueue, "app", s) },
		"delivery": func(s uint64) []byte { return destKey(5, subDelivery, "app", s) },
		"dead":     func(s uint64) []byte { return destKey(5, subDead, "app", s) },
		"audit":    auditKey,
	}
	for name, key := range kinds {
		t.Run(name, func(t *testing.T) {
			for i := 1; i < len(seqs); i++ {
				a, b := key(seqs[i-1]), key(seqs[i])
				if bytes.Compare(a, b) >= 0 {
					t.Fatalf("key(%d) = %x does not sort before key(%d) = %x", seqs[i-1], a, seqs[i], b)
				}
			}
		})
	}
	// An outbox key orders by event first, then destination: recovery
	// re-sends the oldest event first whatever its destinations are called.
	if bytes.Compare(outboxKey(1, 1, "zzz"), outboxKey(1, 2, "a")) >= 0 {
		t.Fatal("outbox keys do not order by event sequence first")
	}
	// Partitions are contiguous ranges: every key of partition p sorts before
	// every key of p+1, whatever its kind.
	if bytes.Compare(destKey(1, subQueue, "\xff\xff", math.MaxUint64), eventKey(2, 0)) >= 0 {
		t.Fatal("partition 1 overlaps partition 2")
	}
}

// TestDestinationRangesDoNotOverlap: one destination's range never holds
// another's keys, even when one slug is a prefix of the other.
func TestDestinationRangesDoNotOverlap(t *testing.T) {
	slugs := []string{"a", "a-b", "ab", "a\x01", "b"}
	for _, sub := range []byte{subQueue, subDelivery, subDead} {
		for _, x := range slugs {
			lo := destPrefix(0, sub, x)
			hi := prefixEnd(lo)
			for _, y := range slugs {
				if x == y {
					continue
				}
				for _, s := range []uint64{0, math.MaxUint64} {
					k := destKey(0, sub, y, s)
					if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
						t.Fatalf("%q's key %x falls in %q's range [%x, %x)", y, k, x, lo, hi)
					}
				}
			}
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "b"},
		{"ab", "ac"},
		{"a\xff", "b"},
		{"a\xff\xff", "b"},
		{"\xff", ""},
		{"\xff\xff", ""},
		{"p\x00\x01q", "p\x00\x01r"},
	}
	for _, tt := range tests {
		got := prefixEnd([]byte(tt.in))
		if string(got) != tt.want || (tt.want == "" && got != nil) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tt.in, got, tt.want)
		}
	}
	// prefixEnd must not write through to its argument.
	p := []byte("a\xff")
	prefixEnd(p)
	if string(p) != "a\xff" {
		t.Fatalf("prefixEnd changed its argument to %x", p)
	}
}

func TestPartition(t *testing.T) {
	for _, n := range []int{1, 2, 7, 64, 4096} {
		for i := 0; i < 200; i++ {
			p := Partition(n, "src", fmt.Sprint("key", i))
			if int(p) >= n {
				t.Fatalf("Partition(%d) = %d", n, p)
			}
			if again := Partition(n, "src", fmt.Sprint("key", i)); again != p {
				t.Fatalf("Partition is not deterministic: %d then %d", p, again)
			}
		}
	}
	// The separator keeps ("ab", "c") and ("a", "bc") apart, and the value is
	// pinned: it decides where existing data lives.
	if Partition(1<<16-1, "ab", "c") == Partition(1<<16-1, "a", "bc") {
		t.Fatal("parts are not separated")
	}
	if got := Partition(64, "src", "key"); got != pinnedPartition {
		t.Fatalf("Partition(64, src, key) = %d, want %d: the partition function changed", got, pinnedPartition)
	}
	// Keys spread: 64 partitions, 6400 keys, none empty.
	counts := make([]int, 64)
	for i := 0; i < 6400; i++ {
		counts[Partition(64, "s", fmt.Sprint(i))]++
	}
	if slices.Contains(counts, 0) {
		t.Fatalf("a partition got no keys: %v", counts)
	}
}

// pinnedPartition is FNV-64a of "src\x00key" mod 64.
const pinnedPartition = 50

func TestEventIDRoundTrip(t *testing.T) {
	for _, c := range []struct {
		part uint16
		seq  uint64
	}{{0, 0}, {0, 1}, {7, 0xdeadbeef}, {65535, math.MaxUint64}} {
		id := EventID(c.part, c.seq)
		if len(id) != 24 {
			t.Fatalf("EventID length %d", len(id))
		}
		part, seq, err := ParseEventID(id)
		if err != nil || part != c.part || seq != c.seq {
			t.Fatalf("ParseEventID(%s) = %d, %d, %v", id, part, seq, err)
		}
	}
	if id := EventID(1, 2); id != "evt_00010000000000000002" {
		t.Fatalf("EventID(1, 2) = %s", id)
	}
	for _, bad := range []string{"", "evt_", "evt_0001000000000000000", "evt_000100000000000000020", "evx_00010000000000000002", "evt_0001000000000000000g"} {
		if _, _, err := ParseEventID(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("ParseEventID(%q) = %v, want ErrNotFound", bad, err)
		}
	}
}

func FuzzParseEventID(f *testing.F) {
	f.Add("evt_00010000000000000002")
	f.Add("evt_ffffffffffffffffffff")
	f.Fuzz(func(t *testing.T, id string) {
		part, seq, err := ParseEventID(id)
		if err != nil {
			return
		}
		// Hex is case-insensitive on the way in; the canonical form is lower.
		if again := EventID(part, seq); !bytes.EqualFold([]byte(again), []byte(id)) {
			t.Fatalf("%q parsed to %d/%d, which formats as %q", id, part, seq, again)
		}
	})
}

// TestQueueReadsStayInTheirDestination: with every destination in one
// partition, and slugs that prefix each other, each read sees only its own
// destination's entries, in queue order.
func TestQueueReadsStayInTheirDestination(t *testing.T) {
	db, err := Open(t.TempDir(), Config{Partitions: 1, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	slugs := []string{"a", "a-b", "ab", "b"}
	b := db.NewBatch()
	for i, s := range slugs {
		// Destination i has i+2 entries, written out of order.
		for q := uint64(i + 2); q >= 1; q-- {
			b.PutQueue(s, q*10, 0, uint64(i*100)+q)
			b.PutDelivery(uint64(i*100)+q, &Delivery{Destination: s, EventID: EventID(0, uint64(i*100)+q), Status: StatusDead})
		}
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	dests, err := db.DestsWithPending()
	if err != nil || fmt.Sprint(dests) != fmt.Sprint(slugs) {
		t.Fatalf("DestsWithPending = %v, %v", dests, err)
	}
	for i, s := range slugs {
		want := i + 2
		if n, err := db.QueueDepth(s); n != want || err != nil {
			t.Errorf("QueueDepth(%s) = %d, %v; want %d", s, n, err, want)
		}
		if n, err := db.CountDead(s); n != want || err != nil {
			t.Errorf("CountDead(%s) = %d, %v; want %d", s, n, err, want)
		}
		if last, err := db.LastQSeq(s); last != uint64(want*10) || err != nil {
			t.Errorf("LastQSeq(%s) = %d, %v", s, last, err)
		}
		page, err := db.QueuePage(s, 10, 100)
		if err != nil || len(page) != want-1 {
			t.Fatalf("QueuePage(%s) = %+v, %v", s, page, err)
		}
		for j, e := range page {
			if e.QSeq != uint64(j+2)*10 || e.EventSeq != uint64(i*100+j+2) {
				t.Fatalf("QueuePage(%s)[%d] = %+v", s, j, e)
			}
		}
		ids, next, err := db.ListDead(s, 0, 1)
		if err != nil || len(ids) != 1 || ids[0] != EventID(0, uint64(i*100)+1) || next != uint64(i*100)+1 {
			t.Fatalf("ListDead(%s) first page = %v, %d, %v", s, ids, next, err)
		}
	}
	if page, err := db.QueuePage("a", ^uint64(0), 10); err != nil || len(page) != 0 {
		t.Fatalf("QueuePage past the last sequence = %v, %v", page, err)
	}
	if n, err := db.QueueDepth("none"); n != 0 || err != nil {
		t.Fatalf("QueueDepth of an unknown destination = %d, %v", n, err)
	}
}

func TestCountByDestination(t *testing.T) {
	db, err := Open(t.TempDir(), Config{Partitions: 3, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]DestCount{"a": {Depth: 3, Dead: 1}, "a-b": {Depth: 1}, "ab": {Dead: 2}, "z": {Depth: 5, Dead: 5}}
	b := db.NewBatch()
	seq := uint64(0)
	for dest, c := range want {
		for i := 0; i < c.Depth; i++ {
			seq++
			b.PutQueue(dest, uint64(i+1), 0, seq)
		}
		for i := 0; i < c.Dead; i++ {
			seq++
			b.PutDelivery(seq, &Delivery{Destination: dest, EventID: EventID(0, seq), Status: StatusDead})
		}
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	got, err := db.CountByDestination()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("CountByDestination = %v, want %v", got, want)
	}
}
