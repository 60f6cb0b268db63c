package wal

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Names inside a data dir.
const (
	// PebbleDir holds the store.
	PebbleDir = "pebble"
	// SecretKeyFile holds the sealing key, 64 hex characters, mode 0600.
	SecretKeyFile = "secret.key"
)

// Dir is the data dir the store was opened in.
func (db *DB) Dir() string { return db.dir }

// SecretKey returns a copy of the key that seals secrets at rest. Only a
// backup that was explicitly asked to carry it calls this.
func (db *DB) SecretKey() []byte { return slices.Clone(db.secretKey) }

// KeyID names a sealing key without revealing it: a backup records it so a
// restore can tell the right key from a wrong one before opening anything.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("webhookops secret key id\x00"))
	h.Write(key)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Checkpoint writes a consistent copy of the store as of now into dir,
// which must not exist yet and should be on the same file system as the
// data dir (sstables are hard-linked, not copied). Every commit that was
// acknowledged before the call is in it. The node keeps running.
func (db *DB) Checkpoint(dir string) error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	if st := db.stopped.Load(); st != nil {
		// Flushing the WAL would wait on the write that failed.
		return fmt.Errorf("wal.Checkpoint: %w", st.err)
	}
	if err := db.pdb.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("wal.Checkpoint: %w", err)
	}
	return nil
}

// Stats is what a store holds, counted key by key.
type Stats struct {
	Partitions        int    `json:"partitions"`
	Events            uint64 `json:"events"`
	LastEventSeq      uint64 `json:"last_event_seq"`
	DedupeKeys        uint64 `json:"dedupe_keys"`
	Outbox            uint64 `json:"outbox"`
	PendingDeliveries uint64 `json:"pending_deliveries"` // queue entries
	DeliveryRecords   uint64 `json:"delivery_records"`
	DeadLetters       uint64 `json:"dead_letters"`
	AuditEntries      uint64 `json:"audit_entries"`
	LastAuditSeq      uint64 `json:"last_audit_seq"`
	// Config lists the configured objects by kind (sources, destinations,
	// agents, forwards: their slugs; tokens: their names). Secrets are
	// not read.
	Config map[string][]string `json:"config"`
	Other  uint64              `json:"other_keys,omitempty"`
}

var kindNames = map[byte]string{
	KindSource: "sources", KindDestination: "destinations", KindAgent: "agents",
	KindForward: "forwards", KindToken: "tokens",
}

// InspectCheckpoint opens a checkpoint (or a stopped node's pebble dir)
// read-only and counts what it holds.
func InspectCheckpoint(dir string) (Stats, error) {
	// Without this check, a read-only open of an empty directory fails
	// with a message about a missing manifest marker.
	if m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*")); len(m) == 0 {
		return Stats{}, fmt.Errorf("wal.InspectCheckpoint: %s is not a Pebble store (no MANIFEST)", dir)
	}
	pdb, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quietPebble{}})
	if err != nil {
		return Stats{}, fmt.Errorf("wal.InspectCheckpoint: %w", err)
	}
	defer pdb.Close()
	it, err := pdb.NewIter(nil)
	if err != nil {
		return Stats{}, fmt.Errorf("wal.InspectCheckpoint: %w", err)
	}
	defer it.Close()
	st := Stats{Config: map[string][]string{}}
	for ok := it.First(); ok; ok = it.Next() {
		st.count(it.Key(), it.Value)
	}
	if err := it.Error(); err != nil {
		return Stats{}, fmt.Errorf("wal.InspectCheckpoint: %w", err)
	}
	if st.Partitions == 0 {
		return Stats{}, fmt.Errorf("wal.InspectCheckpoint: %w: no partition count", ErrCorrupt)
	}
	return st, nil
}

func (st *Stats) count(k []byte, value func() []byte) {
	switch {
	case len(k) == 2 && k[0] == prefixMeta && k[1] == 'P':
		fmt.Sscan(string(value()), &st.Partitions)
	case len(k) >= 2 && k[0] == prefixConfig:
		if name, ok := kindNames[k[1]]; ok { // replay records are not config
			st.Config[name] = append(st.Config[name], string(k[2:]))
		}
	case len(k) == 9 && k[0] == prefixAudit:
		n := 1 // a damaged block counts as one entry
		if blk, err := parseAuditBlock(k, value()); err == nil {
			n = len(blk.entries)
		}
		st.AuditEntries += uint64(n)
		st.LastAuditSeq = max(st.LastAuditSeq, binary.BigEndian.Uint64(k[1:])+uint64(n)-1)
	case len(k) >= 4 && k[0] == prefixPartition:
		switch k[3] {
		case subEvent:
			st.Events++
			if len(k) == 12 {
				st.LastEventSeq = max(st.LastEventSeq, binary.BigEndian.Uint64(k[4:]))
			}
		case subDedupe:
			st.DedupeKeys++
		case subOutbox:
			st.Outbox++
		case subQueue:
			st.PendingDeliveries++
		case subDelivery:
			st.DeliveryRecords++
		case subDead:
			st.DeadLetters++
		case subReplica, subPending, subNoDest: // replication state; indexes
		default:
			st.Other++
		}
	case len(k) > 0 && k[0] == prefixMeta:
	default:
		st.Other++
	}
}

// quietPebble drops Pebble's informational lines while inspecting.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// ErrNotEmpty: a restore target that already holds files.
var ErrNotEmpty = errors.New("wal: target directory is not empty")

// CheckEmptyDir accepts a directory that does not exist or holds nothing;
// a restore never writes over a data dir.
func CheckEmptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: %s holds %s", ErrNotEmpty, dir, names[0])
	}
	return nil
}

// VerifyRestored opens a restored data dir with key, reads every sealed
// secret back (a wrong key fails here, not at the first delivery) and
// counts what it holds. It writes nothing a node would not write on start.
func VerifyRestored(dir string, key []byte) (Stats, error) {
	db, err := Open(dir, Config{SecretKey: key})
	if err != nil {
		return Stats{}, err
	}
	_, err1 := db.Sources()
	_, err2 := db.Destinations()
	_, err3 := db.Agents()
	if err := errors.Join(err1, err2, err3, db.Close()); err != nil {
		return Stats{}, err
	}
	return InspectCheckpoint(filepath.Join(dir, PebbleDir))
}
