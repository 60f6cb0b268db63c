package wal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestCountEventsStopsAtMax: the count reads keys across every partition
// and stops at max, saying there are more.
func TestCountEventsStopsAtMax(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	if n, more, err := db.CountEvents(10); n != 0 || more || err != nil {
		t.Fatalf("empty store: %d %v %v", n, more, err)
	}
	b := db.NewBatch()
	for i := range 7 {
		key := fmt.Sprint("k", i)
		b.PutEvent(&Event{Partition: db.EventPartition("s", key), Seq: db.NextSeq(), Source: "s", IdemKey: key, ReceivedAt: time.Now()})
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max, n int
		more   bool
	}{{10, 7, false}, {7, 7, false}, {6, 6, true}, {0, 0, true}} {
		if n, more, err := db.CountEvents(tc.max); n != tc.n || more != tc.more || err != nil {
			t.Errorf("CountEvents(%d) = %d %v %v, want %d %v", tc.max, n, more, err, tc.n, tc.more)
		}
	}
	db.Close()
	if _, _, err := db.CountEvents(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
