package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

func TestDecideSpace(t *testing.T) {
	const M = 1 << 20
	cases := []struct {
		name string
		in   spaceInput
		want spaceDecision
	}{
		{"plenty, ballast in place", spaceInput{free: 1000 * M, floor: 100 * M, ballast: 10 * M, haveBallast: true}, spaceDecision{accept: true}},
		{"plenty, no ballast yet", spaceInput{free: 1000 * M, floor: 100 * M, ballast: 10 * M}, spaceDecision{makeBallast: true, accept: true}},
		{"just room for floor and ballast", spaceInput{free: 110 * M, floor: 100 * M, ballast: 10 * M}, spaceDecision{makeBallast: true, accept: true}},
		{"room for the floor, not the ballast", spaceInput{free: 105 * M, floor: 100 * M, ballast: 10 * M}, spaceDecision{}},
		{"below the floor with ballast", spaceInput{free: 99 * M, floor: 100 * M, ballast: 10 * M, haveBallast: true}, spaceDecision{}},
		{"at the floor with ballast", spaceInput{free: 100 * M, floor: 100 * M, ballast: 10 * M, haveBallast: true}, spaceDecision{accept: true}},
		{"no floor, no ballast wanted", spaceInput{free: 0}, spaceDecision{accept: true}},
		{"no floor, ballast spent, room for it", spaceInput{free: 20 * M, ballast: 10 * M}, spaceDecision{makeBallast: true, accept: true}},
		{"no floor, ballast spent, no room", spaceInput{free: 5 * M, ballast: 10 * M}, spaceDecision{}},
		{"floor, no ballast wanted", spaceInput{free: 100 * M, floor: 100 * M}, spaceDecision{accept: true}},
		{"floor, no ballast wanted, below", spaceInput{free: 100*M - 1, floor: 100 * M}, spaceDecision{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideSpace(tc.in); got != tc.want {
				t.Fatalf("decideSpace(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// countingHandler counts log records whose message contains a string.
type countingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// fakeFree is a free-space reading the test sets.
type fakeFree struct{ v atomic.Uint64 }

func (f *fakeFree) statfs(string) (uint64, error) { return f.v.Load(), nil }

func spaceConfig(free *fakeFree, fs vfs.FS, logs *countingHandler) Config {
	return Config{Partitions: 4, CacheSize: 8 << 20, MinFreeBytes: 100 << 20, BallastBytes: 1 << 20,
		SpaceInterval: 5 * time.Millisecond, statfs: free.statfs, fs: fs, Logger: slog.New(logs)}
}

func commitKey(db *DB, k string) error {
	b := db.NewBatch()
	b.b.Set([]byte("t"+k), []byte(k), nil)
	return db.CommitWait(b)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestFloorStopsAndResumesAccepting(t *testing.T) {
	dir := t.TempDir()
	free := &fakeFree{}
	free.v.Store(1 << 30)
	logs := &countingHandler{}
	db, err := Open(dir, spaceConfig(free, nil, logs))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Accepting(); err != nil {
		t.Fatalf("plenty of space: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ballast")); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("ballast: %v %v", fi, err)
	}

	free.v.Store(50 << 20)
	waitUntil(t, "the floor to stop accepting", func() bool { return errors.Is(db.Accepting(), ErrLowSpace) })
	// Below the floor, other writes (deliveries, audit) still go through.
	if err := commitKey(db, "below-floor"); err != nil {
		t.Fatalf("a write below the floor failed: %v", err)
	}
	time.Sleep(30 * time.Millisecond) // several checks: logged once
	free.v.Store(1 << 30)
	waitUntil(t, "accepting again", func() bool { return db.Accepting() == nil })
	if n := logs.count("below the floor"); n != 1 {
		t.Fatalf("the low state was logged %d times, want once", n)
	}
	if n := logs.count("back above the floor"); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once", n)
	}
}

// enospcOnce fails the first WAL write after it is armed with ENOSPC.
type enospcOnce struct{ armed atomic.Bool }

func (e *enospcOnce) MaybeError(op errorfs.Op) error {
	if op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") && e.armed.CompareAndSwap(true, false) {
		return syscall.ENOSPC
	}
	return nil
}
func (e *enospcOnce) String() string { return "enospc-once" }

func TestENOSPCGivesBackTheBallast(t *testing.T) {
	dir := t.TempDir()
	free := &fakeFree{}
	free.v.Store(1 << 30)
	logs := &countingHandler{}
	inj := &enospcOnce{}
	db, err := Open(dir, spaceConfig(free, errorfs.Wrap(vfs.Default, inj), logs))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := commitKey(db, "before"); err != nil {
		t.Fatal(err)
	}
	// The disk fills between two checks: the next WAL write hits ENOSPC.
	free.v.Store(0)
	inj.armed.Store(true)
	if err := commitKey(db, "at-enospc"); err != nil {
		t.Fatalf("the write that hit ENOSPC should complete in the ballast's room: %v", err)
	}
	if inj.armed.Load() {
		t.Fatal("the injected ENOSPC never fired")
	}
	if _, err := os.Stat(filepath.Join(dir, "ballast")); !os.IsNotExist(err) {
		t.Fatalf("ballast still there after ENOSPC: %v", err)
	}
	if !errors.Is(db.Accepting(), ErrLowSpace) {
		t.Fatalf("Accepting after ENOSPC = %v, want ErrLowSpace", db.Accepting())
	}
	if err := commitKey(db, "after"); err != nil {
		t.Fatalf("the store must keep writing after a handled ENOSPC: %v", err)
	}
	free.v.Store(1 << 30)
	waitUntil(t, "the ballast to come back", func() bool { return db.Accepting() == nil })
	if _, err := os.Stat(filepath.Join(dir, "ballast")); err != nil {
		t.Fatalf("ballast not made again: %v", err)
	}
	if n := logs.count("gave back the ballast"); n != 1 {
		t.Fatalf("ENOSPC logged %d times, want once", n)
	}
}

// enospcUntil fails every WAL write with ENOSPC while on.
type enospcUntil struct{ on atomic.Bool }

func (e *enospcUntil) MaybeError(op errorfs.Op) error {
	if op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") && e.on.Load() {
		return syscall.ENOSPC
	}
	return nil
}
func (e *enospcUntil) String() string { return "enospc-until" }

// With no ballast left, a write that hits ENOSPC waits for room instead of
// failing (a failed WAL write would end the store) and completes once
// space returns.
func TestFullDiskWithoutBallastWaitsForSpace(t *testing.T) {
	dir := t.TempDir()
	free := &fakeFree{}
	free.v.Store(1 << 30)
	logs := &countingHandler{}
	inj := &enospcUntil{}
	cfg := spaceConfig(free, errorfs.Wrap(vfs.Default, inj), logs)
	cfg.BallastBytes = -1
	db, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	free.v.Store(0)
	inj.on.Store(true)
	done := make(chan error, 1)
	go func() { done <- commitKey(db, "waits") }()
	select {
	case err := <-done:
		t.Fatalf("the write finished on a full disk: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if !errors.Is(db.Accepting(), ErrLowSpace) {
		t.Fatalf("Accepting on a full disk = %v, want ErrLowSpace", db.Accepting())
	}
	inj.on.Store(false)
	free.v.Store(1 << 30)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the write failed once space returned: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write never resumed")
	}
	waitUntil(t, "accepting again", func() bool { return db.Accepting() == nil })
	if n := logs.count("writes wait for free space"); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}
}

// eio fails every WAL write and sync while on: a fault no ballast fixes.
type eio struct{ on atomic.Bool }

func (e *eio) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileSync, errorfs.OpFileSyncData:
		if strings.HasSuffix(op.Path, ".log") && e.on.Load() {
			return syscall.EIO
		}
	}
	return nil
}
func (e *eio) String() string { return "eio" }

// A write error that reaches Pebble stops the store: no panic (Pebble's
// WAL writer panics on the write after a failed one), every later commit
// fails at once, the cause is logged once, Close returns, and everything
// acknowledged before is there after a restart.
func TestWriteErrorStopsTheStoreWithoutPanic(t *testing.T) {
	dir := t.TempDir()
	free := &fakeFree{}
	free.v.Store(1 << 30)
	logs := &countingHandler{}
	inj := &eio{}
	db, err := Open(dir, spaceConfig(free, errorfs.Wrap(vfs.Default, inj), logs))
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	for i := range 20 {
		k := fmt.Sprint("ok", i)
		if err := commitKey(db, k); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, k)
	}
	inj.on.Store(true)
	// Many commits in flight at once, not waiting for each other, so
	// several groups are in Pebble's pipeline when the first one fails.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 2000 {
		k := fmt.Sprint("async", i)
		b := db.NewBatch()
		// Big enough to fill WAL blocks: Pebble's writer takes up its
		// first error when it moves to a new block.
		b.b.Set([]byte("t"+k), []byte(k), nil)
		b.b.Set([]byte("pad"+k), make([]byte, 4096), nil)
		wg.Add(1)
		db.Commit(b, func(err error) {
			if err == nil {
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if !errors.Is(db.Accepting(), ErrStopped) {
		t.Fatalf("Accepting after a write error = %v, want ErrStopped", db.Accepting())
	}
	start := time.Now()
	if err := commitKey(db, "later"); !errors.Is(err, ErrStopped) {
		t.Fatalf("a commit after the failure answered %v, want ErrStopped", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("a commit on a stopped store should fail at once")
	}
	if n := logs.count("storage write failed"); n != 1 {
		t.Fatalf("the failure was logged %d times, want once", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung after a write failure")
	}
	// What a restart sees: the files as they are on disk now (the stopped
	// Pebble keeps its lock in this process, so open a copy).
	restart := t.TempDir()
	if err := os.CopyFS(restart, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(restart, "secret.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(restart, Config{Partitions: 4, CacheSize: 8 << 20, MinFreeBytes: -1, BallastBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	for _, k := range acked {
		if v, err := db2.get([]byte("t" + k)); err != nil || string(v) != k {
			t.Fatalf("acknowledged key %q lost after the failure: %v", k, err)
		}
	}
	t.Logf("%d commits acknowledged, all there after a restart", len(acked))
}

// A store that opens with less room than opening needs gives back its
// ballast first; if that is not enough it refuses, and opens once space
// is back (making the ballast again).
func TestOpenGivesBackTheBallastForRoom(t *testing.T) {
	dir := t.TempDir()
	free := &fakeFree{}
	free.v.Store(1 << 30)
	logs := &countingHandler{}
	db, err := Open(dir, spaceConfig(free, nil, logs))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, "ballast")); err != nil {
		t.Fatalf("no ballast: %v", err)
	}
	free.v.Store(openMargin - 1) // the fake does not grow when the ballast goes
	if db, err := Open(dir, spaceConfig(free, nil, logs)); !errors.Is(err, ErrLowSpace) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open without room: %v, want ErrLowSpace", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ballast")); !os.IsNotExist(err) || logs.count("gave back the ballast to open") != 1 {
		t.Fatalf("the ballast was not given back (%v) or not said once", err)
	}
	free.v.Store(1 << 30)
	db, err = Open(dir, spaceConfig(free, nil, logs))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(filepath.Join(dir, "ballast")); err != nil {
		t.Fatalf("ballast not made again: %v", err)
	}
}
