package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// commitEvent writes one event with its dedupe key and one queue entry,
// as the ingest path does, and waits until it is durable.
func commitEvent(t *testing.T, db *DB, i int) *Event {
	t.Helper()
	key := fmt.Sprintf("k%d", i)
	e := &Event{
		Partition: db.EventPartition("src", key), Seq: db.NextSeq(), Source: "src", IdemKey: key,
		ReceivedAt: time.Now().UTC(), Body: []byte(key), Destinations: []string{"d"},
	}
	b := db.NewBatch()
	b.PutEvent(e)
	b.PutDedupe(e.Partition, e.Source, e.IdemKey, e.Seq, e.ReceivedAt)
	b.PutQueue("d", e.Seq, e.Partition, e.Seq)
	if err := db.CommitWait(b); err != nil {
		t.Error(err)
	}
	return e
}

// TestCheckpointWhileCommitting: a checkpoint taken while commits go on
// holds every commit acknowledged before it began, opens as a data dir
// with the same key, and its counts match what it holds.
func TestCheckpointWhileCommitting(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	b := db.NewBatch()
	if err := b.PutSource(model.Source{Slug: "src", Provider: "generic", Secrets: []string{"s3cret"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex // guards committed
		committed []*Event
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				e := commitEvent(t, db, i)
				mu.Lock()
				committed = append(committed, e)
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(committed)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	before := append([]*Event(nil), committed...)
	mu.Unlock()
	ck := filepath.Join(dir, "backups", "ck")
	if err := os.MkdirAll(filepath.Dir(ck), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ck); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // commits go on after it
	close(stop)
	wg.Wait()
	if err := db.Checkpoint(ck); err == nil {
		t.Fatal("checkpoint into an existing directory succeeded")
	}
	key := db.SecretKey()
	if db.Dir() != dir || len(key) != 32 {
		t.Fatalf("Dir %q, key of %d bytes", db.Dir(), len(key))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(filepath.Join(dir, "late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("checkpoint after close: %v", err)
	}

	st, err := InspectCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	var maxSeq uint64
	for _, e := range before {
		maxSeq = max(maxSeq, e.Seq)
	}
	if st.Partitions != 8 || st.Events < uint64(len(before)) || st.LastEventSeq < maxSeq ||
		st.DedupeKeys != st.Events || st.PendingDeliveries != st.Events || len(st.Config["sources"]) != 1 {
		t.Fatalf("stats %+v for %d events committed before (last seq %d)", st, len(before), maxSeq)
	}

	// The checkpoint as a data dir of its own.
	restored := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ck, filepath.Join(restored, PebbleDir)); err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, 32)
	if _, err := VerifyRestored(restored, wrong); err == nil || !strings.Contains(err.Error(), "does not open with this key") {
		t.Fatalf("wrong key: %v", err)
	}
	st2, err := VerifyRestored(restored, key)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Events != st.Events || st2.LastEventSeq != st.LastEventSeq {
		t.Fatalf("restored stats %+v, checkpoint %+v", st2, st)
	}
	rdb, err := Open(restored, Config{SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for _, e := range before {
		got, err := rdb.GetEvent(e.Partition, e.Seq)
		if err != nil || string(got.Body) != e.IdemKey {
			t.Fatalf("event %s committed before the checkpoint: %v %+v", e.ID(), err, got)
		}
	}
	if got := rdb.NextSeq(); got != st.LastEventSeq+1 {
		t.Fatalf("restored node's next sequence %d, want %d", got, st.LastEventSeq+1)
	}
}

func TestInspectRefusesNonStore(t *testing.T) {
	if _, err := InspectCheckpoint(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a Pebble store") {
		t.Fatalf("empty dir: %v", err)
	}
}

func TestKeyID(t *testing.T) {
	a, b := make([]byte, 32), make([]byte, 32)
	b[0] = 1
	if KeyID(a) != KeyID(append([]byte(nil), a...)) || KeyID(a) == KeyID(b) || !strings.HasPrefix(KeyID(a), "sha256:") || len(KeyID(a)) != 23 {
		t.Fatalf("KeyID: %s %s", KeyID(a), KeyID(b))
	}
}

func TestCheckEmptyDir(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	os.MkdirAll(filepath.Join(full, "x"), 0o700)
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o700)
	for path, wantErr := range map[string]bool{filepath.Join(dir, "missing"): false, empty: false, full: true} {
		err := CheckEmptyDir(path)
		if (err != nil) != wantErr || (wantErr && !errors.Is(err, ErrNotEmpty)) {
			t.Errorf("CheckEmptyDir(%s) = %v", path, err)
		}
	}
}

func TestSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, SecretKeyFile)
	key := []byte(strings.Repeat("k", 32))
	if err := WriteSecretKeyFile(p, key); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretKeyFile(p, key); err == nil {
		t.Fatal("overwrote a key file")
	}
	got, err := ReadSecretKeyFile(p)
	if err != nil || string(got) != string(key) {
		t.Fatalf("read back %q, %v", got, err)
	}
	os.Chmod(p, 0o644)
	if _, err := ReadSecretKeyFile(p); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable key: %v", err)
	}
	os.WriteFile(p, []byte("nothex\n"), 0o600)
	if _, err := ReadSecretKeyFile(p); err == nil || !strings.Contains(err.Error(), "64 hex") {
		t.Fatalf("bad key: %v", err)
	}
}
