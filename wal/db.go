package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures the store. A zero field means the default.
type Config struct {
	// Partitions is used only when the data dir is created; an existing
	// data dir keeps the count it was created with.
	Partitions int
	// CacheSize is Pebble's block cache in bytes.
	CacheSize int64
	// SecretKey is the 32-byte AES key that seals secrets at rest. Nil
	// means: read or create <dir>/secret.key with mode 0600.
	SecretKey []byte
	Logger    *slog.Logger
	// MaxBatchBytes caps one group commit.
	MaxBatchBytes int
	// MinFreeBytes is the free-space floor: below it the store refuses new
	// events (Accepting answers ErrLowSpace). Negative: no floor.
	MinFreeBytes int64
	// BallastBytes is the size of the ballast file given back on the first
	// ENOSPC. Negative: no ballast.
	BallastBytes int64
	// SpaceInterval is how often free space is read.
	SpaceInterval time.Duration
	// DedupeFilterBytes bounds the memory of the in-memory filter that
	// answers most lookups of new idempotency keys without reading Pebble
	// (dedupe.go). Negative: no filter, every lookup reads Pebble.
	DedupeFilterBytes int64
	// FreeSpace replaces the reading of the data dir's free bytes (nil:
	// statfs), so tests of other packages can move a store across its
	// floor and back.
	FreeSpace func(dir string) (uint64, error)

	// fs replaces the OS file system under Pebble (fault injection in
	// tests); statfs replaces the free-space reading.
	fs     vfs.FS
	statfs func(dir string) (uint64, error)
	// memTableSize replaces Pebble's 64 MiB memtable (a small file system
	// in tests).
	memTableSize uint64
	// filterMaxKeys replaces the largest dedupe filter's capacity
	// (bloomMaxKeys), so tests fill several with few keys.
	filterMaxKeys int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Partitions: 64, CacheSize: 256 << 20, MaxBatchBytes: 16 << 20,
		MinFreeBytes: DefaultMinFree, BallastBytes: DefaultBallast, SpaceInterval: time.Second,
		DedupeFilterBytes: 64 << 20}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Partitions < 0 || c.Partitions > 4096 {
		return fmt.Errorf("wal: partitions must be between 1 and 4096, got %d", c.Partitions)
	}
	if c.SecretKey != nil && len(c.SecretKey) != 32 {
		return fmt.Errorf("wal: secret key must be 32 bytes, got %d", len(c.SecretKey))
	}
	return nil
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Partitions == 0 {
		c.Partitions = d.Partitions
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = d.MaxBatchBytes
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = d.MinFreeBytes
	}
	if c.BallastBytes == 0 {
		c.BallastBytes = d.BallastBytes
	}
	if c.SpaceInterval <= 0 {
		c.SpaceInterval = d.SpaceInterval
	}
	if c.DedupeFilterBytes == 0 {
		c.DedupeFilterBytes = d.DedupeFilterBytes
	}
	if c.fs == nil {
		c.fs = vfs.Default
	}
	if c.statfs == nil {
		c.statfs = c.FreeSpace
	}
	if c.statfs == nil {
		c.statfs = freeBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// DB is the durable store.
type DB struct {
	pdb        *pebble.DB
	cache      interface{ Unref() }
	partitions int
	sealer     *sealer
	log        *slog.Logger
	dir        string // the data dir
	secretKey  []byte // for backups that ask for it (SecretKey)
	space      *space
	stopped    atomic.Pointer[stopped] // set once, by the first write failure
	stoppedCh  chan struct{}           // closed with it
	filter     *dedupeFilter           // nil: no filter (dedupe.go)

	seq      atomic.Uint64 // last event sequence handed out
	auditSeq atomic.Uint64 // last audit sequence handed out

	// closeMu keeps Close from closing Pebble under a reader: Pebble
	// panics on use after close. Readers hold it shared for the life of an
	// iterator.
	closeMu sync.RWMutex

	commits   chan *pending
	applying  atomic.Pointer[[]*pending] // the group in Pebble's hands now
	applied   chan appliedGroup
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
	fault     atomic.Pointer[func() error] // see SetCommitFault
}

// Open opens or creates the store in dir.
func Open(dir string, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal.Open: %w", err)
	}
	key := cfg.SecretKey
	if key == nil {
		var err error
		if key, err = loadOrCreateKey(filepath.Join(dir, SecretKeyFile)); err != nil {
			return nil, fmt.Errorf("wal.Open: %w", err)
		}
	}
	s, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("wal.Open: %w", err)
	}
	done := make(chan struct{})
	sp := &space{dir: dir, floor: uint64(max(cfg.MinFreeBytes, 0)), ballast: uint64(max(cfg.BallastBytes, 0)),
		interval: cfg.SpaceInterval, statfs: cfg.statfs, log: cfg.Logger, done: done}
	sp.start()
	db := &DB{
		sealer:    s,
		log:       cfg.Logger,
		space:     sp,
		stoppedCh: make(chan struct{}),
		commits:   make(chan *pending, 4096),
		applied:   make(chan appliedGroup, 16),
		done:      done,
	}
	cache := pebble.NewCache(cfg.CacheSize)
	// Pebble writes through: the WAL watch (a WAL write error stops the
	// store before Pebble's writer can take it up), then the ENOSPC
	// handler (ballast, or wait for room), then the file system.
	fs := walWatchFS{FS: vfs.OnDiskFull(cfg.fs, sp.onDiskFull), onErr: func(err error) {
		if !sp.opened.Load() {
			return
		}
		db.fail(err, false)
		select {} // see walWatchFS
	}}
	opts := &pebble.Options{Cache: cache, Logger: newPebbleLogger(cfg.Logger), FS: fs}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.MemTableSize = 64 << 20
	if cfg.memTableSize > 0 {
		opts.MemTableSize = cfg.memTableSize
	}
	if err := sp.roomToOpen(filepath.Join(dir, PebbleDir)); err != nil {
		cache.Unref()
		return nil, fmt.Errorf("wal.Open: %w", err)
	}
	pdb, err := openPebble(filepath.Join(dir, PebbleDir), opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("wal.Open: %w", err)
	}
	db.pdb, db.cache = pdb, cache
	db.dir, db.secretKey = dir, key
	if err := db.initMeta(cfg.Partitions); err != nil {
		pdb.Close()
		cache.Unref()
		return nil, fmt.Errorf("wal.Open: %w", err)
	}
	if err := db.migrateSeals(); err != nil {
		pdb.Close()
		cache.Unref()
		return nil, fmt.Errorf("wal.Open: sealing secrets with their record: %w", err)
	}
	if err := db.buildIndexes(); err != nil {
		pdb.Close()
		cache.Unref()
		return nil, fmt.Errorf("wal.Open: building the event indexes: %w", err)
	}
	if err := db.initSeqs(); err != nil {
		pdb.Close()
		cache.Unref()
		return nil, fmt.Errorf("wal.Open: %w", err)
	}
	sp.opened.Store(true)
	db.wg.Add(3)
	go db.commitLoop(cfg.MaxBatchBytes)
	go db.syncLoop()
	go sp.loop(&db.wg)
	if cfg.DedupeFilterBytes > 0 {
		maxKeys := bloomMaxKeys
		if cfg.filterMaxKeys > 0 {
			maxKeys = cfg.filterMaxKeys
		}
		db.filter = newDedupeFilter(db.partitions, cfg.DedupeFilterBytes, maxKeys)
		db.wg.Add(1)
		go db.filterLoop()
	}
	return db, nil
}

// openPebble opens Pebble, turning a panic or Fatalf while it opens (a
// write failing on a full disk) into an error.
func openPebble(dir string, opts *pebble.Options) (pdb *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: %v", r)
		}
	}()
	return pebble.Open(dir, opts)
}

// Partitions is the partition count fixed when the data dir was created.
func (db *DB) Partitions() int { return db.partitions }

// Close waits for queued commits, then closes Pebble. Idempotent.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		db.closeMu.Lock()
		db.closed.Store(true)
		db.closeMu.Unlock()
		close(db.done)
		if st := db.stopped.Load(); st != nil {
			// Pebble is stuck in a WAL write that will never return, or
			// panicked holding its commit lock, which its Close takes: it
			// cannot be closed, only left to the process exit. Everything
			// acknowledged was synced before.
			err = st.err
			return
		}
		db.wg.Wait()
		err = db.pdb.Close()
		db.cache.Unref()
	})
	return err
}

func (db *DB) initMeta(want int) error {
	k := []byte{prefixMeta, 'P'}
	v, closer, err := db.pdb.Get(k)
	switch {
	case err == nil:
		n, perr := strconv.Atoi(string(v))
		closer.Close()
		if perr != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%w: partition count %q", ErrCorrupt, v)
		}
		db.partitions = n
		return nil
	case errors.Is(err, pebble.ErrNotFound):
		db.partitions = want
		return db.pdb.Set(k, []byte(strconv.Itoa(want)), pebble.Sync)
	default:
		return err
	}
}

// initSeqs resumes the event and audit sequences after the highest ones on
// disk, so a sequence is never handed out twice.
func (db *DB) initSeqs() error {
	var maxSeq uint64
	for p := 0; p < db.partitions; p++ {
		lo := partKey(uint16(p), subEvent, 0)
		k, ok, err := db.lastKey(lo, prefixEnd(lo))
		if err != nil {
			return err
		}
		if ok && len(k) == len(lo)+8 {
			if s := binary.BigEndian.Uint64(k[len(lo):]); s > maxSeq {
				maxSeq = s
			}
		}
	}
	db.seq.Store(maxSeq)
	last, err := db.lastAuditSeq()
	if err != nil {
		return err
	}
	db.auditSeq.Store(last)
	return nil
}

// lastAuditSeq is the sequence of the newest audit entry (0: none).
func (db *DB) lastAuditSeq() (uint64, error) {
	lo := []byte{prefixAudit}
	it, err := db.newIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	blk, err := parseAuditBlock(it.Key(), it.Value())
	if err != nil {
		return 0, err
	}
	return blk.first + uint64(len(blk.entries)) - 1, nil
}

func (db *DB) lastKey(lo, hi []byte) ([]byte, bool, error) {
	it, err := db.newIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	if !it.Last() {
		return nil, false, it.Error()
	}
	return append([]byte(nil), it.Key()...), true, nil
}

// NextSeq hands out the next event sequence. Sequences grow with time, so
// an event acknowledged before another arrived has the smaller one.
func (db *DB) NextSeq() uint64 { return db.seq.Add(1) }

// pebbleLogger hands Pebble's log lines to slog. Errors are limited to one
// line per format a minute (Pebble retries a failed flush at once, in a
// loop, logging each time). Fatalf panics instead of exiting: on the
// commit path the panic is recovered and stops the store; anywhere else
// it ends the process, as Pebble meant.
type pebbleLogger struct {
	l  *slog.Logger
	mu sync.Mutex // guards last
	// last is when each format was last logged, and how many were
	// dropped since.
	last map[string]*logWindow
}

type logWindow struct {
	at      time.Time
	dropped int
}

func newPebbleLogger(l *slog.Logger) *pebbleLogger {
	return &pebbleLogger{l: l, last: make(map[string]*logWindow)}
}

func (p *pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	now := time.Now()
	p.mu.Lock()
	w := p.last[format]
	if w == nil {
		if len(p.last) >= 256 {
			clear(p.last)
		}
		w = &logWindow{}
		p.last[format] = w
	}
	if !w.at.IsZero() && now.Sub(w.at) < time.Minute {
		w.dropped++
		p.mu.Unlock()
		return
	}
	dropped := w.dropped
	w.at, w.dropped = now, 0
	p.mu.Unlock()
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "similar_lines_dropped", dropped)
}

func (p *pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic(fmt.Errorf("%w: %s", errPebbleFatal, msg))
}

// Flush writes the memtable out to an sstable. After a very large batch
// (a config file of many thousands of destinations) this lets Pebble drop
// the batch it kept in memory.
func (db *DB) Flush() (err error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	if st := db.stopped.Load(); st != nil {
		return st.err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wal.Flush: pebble: %v", r)
			db.fail(err, true)
		}
	}()
	return db.pdb.Flush()
}

// iter is a Pebble iterator that holds the store open until it is closed.
type iter struct {
	*pebble.Iterator
	db *DB
}

// Close closes the iterator and lets the store close.
func (i iter) Close() error {
	err := i.Iterator.Close()
	i.db.closeMu.RUnlock()
	return err
}

func (db *DB) newIter(o *pebble.IterOptions) (iter, error) {
	db.closeMu.RLock()
	if db.closed.Load() {
		db.closeMu.RUnlock()
		return iter{}, ErrClosed
	}
	it, err := db.pdb.NewIter(o)
	if err != nil {
		db.closeMu.RUnlock()
		return iter{}, err
	}
	return iter{Iterator: it, db: db}, nil
}
