package wal

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errDisk = errors.New("injected: disk on fire")

// TestGroupCommitCallbackOrderWithFailures: callbacks run in the order the
// batches were committed, failed ones included; a failed group writes
// nothing of any of its batches, and the groups around it are unaffected.
func TestGroupCommitCallbackOrderWithFailures(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	// Fail every third group. Which batches share a group depends on timing,
	// so the test learns the outcome of each batch from its callback and
	// then checks the store agrees.
	var groups atomic.Int64
	db.SetCommitFault(func() error {
		if groups.Add(1)%3 == 0 {
			return errDisk
		}
		return nil
	})
	const n = 300
	var mu sync.Mutex
	var order []int
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		b := db.NewBatch()
		b.PutOutbox(0, uint64(i), "d")
		db.Commit(b, func(err error) {
			mu.Lock()
			order = append(order, i)
			errs[i] = err
			mu.Unlock()
			wg.Done()
		})
		if i%50 == 0 {
			time.Sleep(2 * time.Millisecond) // let several groups form
		}
	}
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("callback %d was for batch %d: callbacks out of commit order", i, got)
		}
	}
	stored := map[uint64]bool{}
	if err := db.ScanOutbox(0, func(e OutboxEntry) { stored[e.EventSeq] = true }); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i, err := range errs {
		switch {
		case err != nil && !errors.Is(err, errDisk):
			t.Fatalf("batch %d failed with %v, want the injected error", i, err)
		case err != nil && stored[uint64(i)]:
			t.Fatalf("batch %d failed but its write is in the store", i)
		case err == nil && !stored[uint64(i)]:
			t.Fatalf("batch %d succeeded but its write is missing", i)
		}
		if err != nil {
			failed++
		}
	}
	if failed == 0 || failed == n {
		t.Fatalf("%d of %d batches failed; the fault should hit some groups, not all", failed, n)
	}

	// Cleared, the store commits again.
	db.SetCommitFault(nil)
	b := db.NewBatch()
	b.PutOutbox(0, 1000, "d")
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
}

// TestFailedGroupFailsEveryBatchInIt: batches merged into one group share
// its outcome.
func TestFailedGroupFailsEveryBatchInIt(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	// Hold the committer inside the fault hook while batches queue behind
	// it, so they form one group.
	release := make(chan struct{})
	entered := make(chan struct{})
	var calls atomic.Int64
	db.SetCommitFault(func() error {
		switch calls.Add(1) {
		case 1:
			close(entered)
			<-release
			return nil
		case 2:
			return errDisk
		}
		return nil
	})
	first := db.NewBatch()
	first.PutOutbox(0, 0, "d")
	firstErr := make(chan error, 1)
	db.Commit(first, func(err error) { firstErr <- err })
	<-entered
	errs := make(chan error, 10)
	for i := 1; i <= 10; i++ {
		b := db.NewBatch()
		b.PutOutbox(0, uint64(i), "d")
		db.Commit(b, func(err error) { errs <- err })
	}
	close(release)
	if err := <-firstErr; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := <-errs; !errors.Is(err, errDisk) {
			t.Fatalf("batch in the failed group: %v", err)
		}
	}
	count := 0
	db.ScanOutbox(0, func(OutboxEntry) { count++ })
	if count != 1 {
		t.Fatalf("store holds %d entries, want only the first batch's", count)
	}
}

// TestWaitCommittedWaitsForEarlierCommits: once it returns, every earlier
// callback has run, failed or not.
func TestWaitCommittedWaitsForEarlierCommits(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	var fail atomic.Bool
	db.SetCommitFault(func() error {
		if fail.Load() {
			return errDisk
		}
		return nil
	})
	for round := 0; round < 3; round++ {
		fail.Store(round == 1)
		var done atomic.Int64
		for i := 0; i < 100; i++ {
			b := db.NewBatch()
			b.PutOutbox(0, uint64(round*100+i), "d")
			db.Commit(b, func(error) { done.Add(1) })
		}
		if err := db.WaitCommitted(); err != nil {
			t.Fatal(err)
		}
		if d := done.Load(); d != 100 {
			t.Fatalf("round %d: %d of 100 callbacks had run when WaitCommitted returned", round, d)
		}
	}
	// With nothing queued it returns at once, and a group of markers alone
	// never reaches Pebble.
	for i := 0; i < 3; i++ {
		if err := db.WaitCommitted(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommitRacingCloseIsNeverLost: a Commit concurrent with Close either
// commits or answers ErrClosed; its callback always runs.
func TestCommitRacingCloseIsNeverLost(t *testing.T) {
	for round := 0; round < 20; round++ {
		db := openTest(t, t.TempDir())
		var wg sync.WaitGroup
		var called atomic.Int64
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					b := db.NewBatch()
					b.PutOutbox(0, uint64(g*1000+i), "d")
					db.Commit(b, func(err error) {
						if err != nil && !errors.Is(err, ErrClosed) {
							t.Errorf("commit: %v", err)
						}
						called.Add(1)
					})
				}
			}()
		}
		db.Close()
		wg.Wait()
		if c := called.Load(); c != 200 {
			t.Fatalf("round %d: %d of 200 callbacks ran", round, c)
		}
	}
}
