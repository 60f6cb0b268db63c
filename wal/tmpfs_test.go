//go:build linux

package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips the
// test when this process may not mount (not root, or no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the fault-injection tests in space_test.go still run", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file of zeros until free space is at most leave bytes, or
// the disk is full when leave is 0.
func fill(t *testing.T, path string, leave uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		free, err := freeBytes(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if free <= leave {
			return
		}
		n := uint64(len(chunk))
		if free-leave < n {
			n = free - leave
		}
		if _, err := f.Write(chunk[:n]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestFullTmpfs runs the store on a real 64 MiB tmpfs until it is full:
// the floor stops new events first; writes that go on fill the disk; the
// first ENOSPC gives back the ballast; with none left, writes wait. When
// space is freed everything resumes, and every acknowledged write is
// there, before and after a restart.
func TestFullTmpfs(t *testing.T) {
	dir := mountTmpfs(t, 64<<20)
	data := filepath.Join(dir, "data")
	logs := &countingHandler{}
	cfg := Config{Partitions: 4, CacheSize: 8 << 20, MinFreeBytes: 16 << 20, BallastBytes: 4 << 20,
		SpaceInterval: 10 * time.Millisecond, Logger: slog.New(logs), memTableSize: 4 << 20}
	db, err := Open(data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []string
	put := func(k string, size int) error {
		b := db.NewBatch()
		b.b.Set([]byte("t"+k), bytes.Repeat([]byte{'v'}, size), nil)
		err := db.CommitWait(b)
		if err == nil {
			mu.Lock()
			acked = append(acked, k)
			mu.Unlock()
		}
		return err
	}
	for i := range 50 {
		if err := put(fmt.Sprint("a", i), 1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Accepting(); err != nil {
		t.Fatalf("empty tmpfs: %v", err)
	}

	// Below the floor: new events refused, other writes still go through.
	fill(t, filepath.Join(dir, "filler1"), 12<<20)
	waitUntil(t, "the floor", func() bool { return errors.Is(db.Accepting(), ErrLowSpace) })
	if err := put("below-floor", 1000); err != nil {
		t.Fatal(err)
	}

	// The disk fills completely while writes go on (deliveries, audit).
	fill(t, filepath.Join(dir, "filler2"), 0)
	stalled := make(chan struct{})
	writerDone := make(chan error, 1)
	resume := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			start := time.Now()
			if err := put(fmt.Sprint("w", i), 64<<10); err != nil {
				writerDone <- err
				return
			}
			if time.Since(start) > 300*time.Millisecond {
				// That write waited for space: it is done now.
				close(stalled)
				<-resume
				writerDone <- nil
				return
			}
		}
	}()
	go func() {
		// Free space once the writer has been waiting a while.
		for {
			if _, err := os.Stat(filepath.Join(data, "ballast")); os.IsNotExist(err) && logs.count("writes wait for free space") > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(400 * time.Millisecond)
		os.Remove(filepath.Join(dir, "filler2"))
		os.Remove(filepath.Join(dir, "filler1"))
	}()
	select {
	case <-stalled:
	case err := <-writerDone:
		t.Fatalf("a write failed on the full disk: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the writer never stalled, or never resumed")
	}
	close(resume)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if n := logs.count("gave back the ballast"); n != 1 {
		t.Fatalf("ballast given back %d times, want once", n)
	}
	waitUntil(t, "accepting after space returned", func() bool { return db.Accepting() == nil })
	if err := put("after", 1000); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB) {
		t.Helper()
		for _, k := range acked {
			if _, err := db.get([]byte("t" + k)); err != nil {
				t.Fatalf("acknowledged %q lost: %v", k, err)
			}
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db)
	t.Logf("%d writes acknowledged, all kept through a full disk and a restart", len(acked))
}

// TestOpenOnAFullDisk: a store reopened on a disk with no room left (a
// node restarted while the disk is still full, its ballast spent) refuses
// to open with an error that says so, instead of letting Pebble's flush of
// the replayed log fail in the background, where its fatal error was a
// panic that killed the process. Once space is freed it opens with every
// acknowledged write.
func TestOpenOnAFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 64<<20)
	data := filepath.Join(dir, "data")
	cfg := Config{Partitions: 4, CacheSize: 8 << 20, MinFreeBytes: 16 << 20, BallastBytes: 4 << 20,
		SpaceInterval: 10 * time.Millisecond, Logger: slog.New(&countingHandler{}), memTableSize: 4 << 20}
	db, err := Open(data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	for i := range 200 {
		k := fmt.Sprint("k", i)
		b := db.NewBatch()
		b.b.Set([]byte("t"+k), bytes.Repeat([]byte{'v'}, 1000), nil)
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, k)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(data, "ballast")) // spent before the restart
	fill(t, filepath.Join(dir, "filler"), 0)

	for range 2 { // and again: refusing to open wrote nothing that breaks the next try
		db, err = Open(data, cfg)
		if err == nil {
			db.Close()
			t.Fatal("opened on a full disk")
		}
		if !errors.Is(err, ErrLowSpace) || !strings.Contains(err.Error(), "free") {
			t.Fatalf("Open on a full disk: %v, want ErrLowSpace saying how much is free", err)
		}
	}
	t.Logf("on a full disk: %v", err)

	os.Remove(filepath.Join(dir, "filler"))
	db, err = Open(data, cfg)
	if err != nil {
		t.Fatalf("Open once space is back: %v", err)
	}
	defer db.Close()
	for _, k := range acked {
		if _, err := db.get([]byte("t" + k)); err != nil {
			t.Fatalf("acknowledged %q lost: %v", k, err)
		}
	}
}
