package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Disk space. Three lines of defence, from the one that should always act
// to the one that should never have to:
//
//  1. A free-space floor (Config.MinFreeBytes), read with statfs every
//     Config.SpaceInterval, never per request. Below it Accepting answers
//     ErrLowSpace: ingest refuses new events (503 + Retry-After) and
//     /readyz fails, while deliveries, audit and retention keep writing
//     into the room the floor left (refusal tallies do not: the
//     actors/refusals package drops its rows while Accepting fails).
//     Above it again, accepting resumes.
//  2. A ballast file (<dir>/ballast, Config.BallastBytes) that Pebble's
//     file system gives back on its first ENOSPC (vfs.OnDiskFull): the
//     write that hit ENOSPC is retried into the space the ballast held and
//     succeeds, so Pebble never sees the error, and the store stops
//     accepting until there is room for the floor and a new ballast. With
//     no ballast left, a write that hits ENOSPC waits (without spinning)
//     until ballast-sized room returns or the store closes.
//  3. Any write error that still reaches a commit (ENOSPC while opening,
//     EIO, a Pebble panic or Fatalf on the commit path) stops the store for
//     good: Accepting and every later Commit answer ErrStopped without
//     touching Pebble again, and the cause is logged once. Pebble's WAL
//     writer keeps its first error forever and panics on the next write,
//     so a restart is the only recovery; nothing acknowledged is lost,
//     since an acknowledgement waits for a synced commit.
//
// Opening is the exception to 2: Pebble replays its log and flushes it in
// the background, where a write that fails is a fatal error in a goroutine
// of its own (a panic that ends the process) or a flush retried without
// end. So Open first checks for room (the log to replay plus openMargin),
// gives back the ballast if that makes it, and otherwise refuses with
// ErrLowSpace saying how much is missing (roomToOpen).

// DefaultMinFree is the default free-space floor: 512 MiB.
const DefaultMinFree = 512 << 20

// DefaultBallast is the default ballast size: 64 MiB.
const DefaultBallast = 64 << 20

// spaceInput is what the space check knows at one moment.
type spaceInput struct {
	free        uint64 // bytes available on the data dir's file system
	floor       uint64 // 0: no floor
	ballast     uint64 // 0: no ballast
	haveBallast bool
}

// spaceDecision is what the space check does about it.
type spaceDecision struct {
	makeBallast bool // create the ballast now
	accept      bool // take new events
}

// decideSpace is the space check's whole policy: make the ballast back
// only when that still leaves the floor free, and accept new events only
// with the floor free and the ballast in place (a node whose ballast is
// spent has nothing left to absorb the next ENOSPC).
func decideSpace(in spaceInput) spaceDecision {
	var d spaceDecision
	free := in.free
	if in.ballast > 0 && !in.haveBallast && free >= in.floor+in.ballast {
		d.makeBallast = true
		free -= in.ballast
	}
	d.accept = free >= in.floor && (in.ballast == 0 || in.haveBallast || d.makeBallast)
	return d
}

// space runs the floor and the ballast for one store.
type space struct {
	dir      string // the data dir, on the file system that fills
	floor    uint64
	ballast  uint64
	interval time.Duration
	statfs   func(dir string) (uint64, error)
	log      *slog.Logger
	done     chan struct{} // closed when the store closes

	low    atomic.Pointer[error] // nil while accepting
	opened atomic.Bool           // Open has finished: a full disk may wait

	mu           sync.Mutex // guards the fields below
	haveBallast  bool
	statfsFailed bool
	// ballastFailed: creating it failed; said once.
	ballastFailed bool
}

func (s *space) ballastPath() string { return s.dir + string(os.PathSeparator) + "ballast" }

// start checks once, so the store opens knowing where it stands; an
// existing ballast of the right size is kept.
func (s *space) start() {
	if fi, err := os.Stat(s.ballastPath()); err == nil {
		if s.ballast > 0 && uint64(fi.Size()) == s.ballast {
			s.haveBallast = true
		} else {
			os.Remove(s.ballastPath())
		}
	}
	s.check()
}

// check reads free space once and acts on it.
func (s *space) check() {
	free, err := s.statfs(s.dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Unknown is not low: a file system that cannot say must not stop
		// ingest. Said once.
		if !s.statfsFailed {
			s.statfsFailed = true
			s.log.Warn("cannot read free space; the floor is not enforced", "dir", s.dir, "err", err)
		}
		return
	}
	s.statfsFailed = false
	d := decideSpace(spaceInput{free: free, floor: s.floor, ballast: s.ballast, haveBallast: s.haveBallast})
	if d.makeBallast {
		if err := makeBallast(s.ballastPath(), int64(s.ballast)); err != nil {
			os.Remove(s.ballastPath())
			d.accept = false
			if !s.ballastFailed {
				s.ballastFailed = true
				s.log.Warn("cannot create the disk ballast; not accepting new events until it can be", "path", s.ballastPath(), "err", err)
			}
		} else {
			s.haveBallast, s.ballastFailed = true, false
		}
	}
	s.setLow(d.accept, free)
}

// setLow records whether new events are accepted, logging only changes.
// Called with mu held.
func (s *space) setLow(accept bool, free uint64) {
	was := s.low.Load()
	switch {
	case accept && was != nil:
		s.low.Store(nil)
		s.log.Info("free space is back above the floor: accepting events again", "free_bytes", free, "floor_bytes", s.floor)
	case !accept && was == nil:
		err := fmt.Errorf("%w: %d MiB free, the floor is %d MiB plus a %d MiB ballast", ErrLowSpace, free>>20, s.floor>>20, s.ballast>>20)
		s.low.Store(&err)
		s.log.Warn("free space below the floor: not accepting new events until space is freed", "free_bytes", free,
			"floor_bytes", s.floor, "ballast_bytes", s.ballast, "dir", s.dir)
	}
}

// openMargin is the room opening needs beside the log it replays (the
// flushed table is at most about its size: compressed, plus filter and
// index): a new MANIFEST (about 100 bytes a table), OPTIONS file and log.
const openMargin = 4 << 20

// roomToOpen makes sure Pebble can open: it replays its write-ahead log
// and flushes it to a table, and a write that fails while it opens is a
// fatal error in a background flush (a panic that ends the process) or a
// flush retried without end (a spinning CPU). So with less free space
// than the log to replay plus openMargin, it gives back the ballast if
// there is one, and otherwise refuses, saying how much room is missing. A
// file system that cannot say is let through, as everywhere else.
func (s *space) roomToOpen(pebbleDir string) error {
	need := uint64(openMargin)
	if entries, err := os.ReadDir(pebbleDir); err == nil {
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".log") {
				need += uint64(fi.Size())
			}
		}
	}
	free, err := s.statfs(s.dir)
	if err != nil || free >= need {
		return nil
	}
	s.mu.Lock()
	had := s.haveBallast
	if had {
		os.Remove(s.ballastPath())
		s.haveBallast = false
		free, err = s.statfs(s.dir)
		s.setLow(false, free)
	}
	s.mu.Unlock()
	if had {
		s.log.Error("disk nearly full at start: gave back the ballast to open the store; not accepting new events until space is freed",
			"dir", s.dir, "ballast_bytes", s.ballast)
		if err != nil || free >= need {
			return nil
		}
	}
	return fmt.Errorf("%w: %.1f MiB free on the disk of %s, and opening the store needs about %.1f MiB (to replay %.1f MiB of its log): free some space and start again",
		ErrLowSpace, mib(free), s.dir, mib(need), mib(need-openMargin))
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// loop re-checks every interval until the store closes.
func (s *space) loop(wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.check()
		}
	}
}

// onDiskFull is Pebble's file system telling us a write hit ENOSPC; every
// new write waits while it runs, and the failed one is retried once after.
// It gives back the ballast if there is one. Without one it waits for room
// rather than let the write fail: a failed WAL write ends the store, and a
// failed flush is retried by Pebble at once, in a loop. While the store is
// opening it does not wait: Open fails and says so.
func (s *space) onDiskFull() {
	s.mu.Lock()
	had := s.haveBallast
	if had {
		os.Remove(s.ballastPath())
		s.haveBallast = false
	}
	free, _ := s.statfs(s.dir)
	s.setLow(false, free)
	s.mu.Unlock()
	if had {
		s.log.Error("disk full: gave back the ballast so the write in progress completes; not accepting new events until space is freed",
			"dir", s.dir, "ballast_bytes", s.ballast)
		return
	}
	if !s.opened.Load() {
		return
	}
	s.log.Error("disk full with no ballast left: writes wait for free space", "dir", s.dir)
	need := max(s.ballast, 16<<20)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if free, err := s.statfs(s.dir); err == nil && free >= need {
			s.log.Info("disk has room again: writes resume", "free_bytes", free)
			return
		}
	}
}

// stopped is the store's state after a write failure.
type stopped struct {
	err      error
	panicked bool // Pebble panicked mid-commit and may hold its commit lock
}

// fail stops the store after a write failure; only the first one is kept
// and logged.
func (db *DB) fail(cause error, panicked bool) {
	st := &stopped{err: fmt.Errorf("%w: %v", ErrStopped, cause), panicked: panicked}
	if db.stopped.CompareAndSwap(nil, st) {
		close(db.stoppedCh)
		go db.answerQueued(st.err)
		db.log.Error("storage write failed: the node stopped accepting events and writes; restart it once the cause is fixed (nothing acknowledged is lost)",
			"err", cause)
	}
}

// answerQueued answers the group being applied and the commits queued
// when the store stopped: the commit loop may be stuck in Pebble and never
// finish with them.
func (db *DB) answerQueued(err error) {
	if g := db.applying.Load(); g != nil {
		for _, p := range *g {
			p.answer(err)
		}
	}
	for {
		select {
		case p := <-db.commits:
			p.answer(err)
		case <-db.done:
			return
		}
	}
}

// Accepting reports whether the store takes new events: nil, or an error
// wrapping ErrLowSpace (free space below the floor; it clears itself when
// space returns) or ErrStopped (a write failed; restart). It reads two
// atomics: cheap enough for every request.
func (db *DB) Accepting() error {
	if st := db.stopped.Load(); st != nil {
		return st.err
	}
	if e := db.space.low.Load(); e != nil {
		return *e
	}
	return nil
}

// errPebbleFatal is what Pebble's Fatalf becomes: a panic that the commit
// path recovers into a stopped store.
var errPebbleFatal = errors.New("wal: pebble fatal error")

func writeZeros(f *os.File, size int64) error {
	zeros := make([]byte, 1<<20)
	for size > 0 {
		n, err := f.Write(zeros[:min(size, int64(len(zeros)))])
		if err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// makeBallast reserves size bytes at path, synced.
func makeBallast(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = reserve(f, size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// walWatchFS stands between Pebble and a failing WAL file. Pebble cannot
// survive a WAL write error: its WAL writer keeps the error and panics on
// the next record it is given, and when a memtable rotation is under way
// the panic becomes a fatal "unlock of unlocked mutex" that no recover
// catches. So an error writing or syncing a WAL file (ENOSPC has been
// handled below by then: the ballast, or a wait for room) stops the store
// and never returns to Pebble: the write blocks until the process exits.
// Commits waiting for that sync are answered ErrStopped (never
// acknowledged), later ones at once, and Close leaves Pebble open. While
// the store is opening an error is returned as it is, so Open fails.
type walWatchFS struct {
	vfs.FS
	// onErr is called with a WAL write error; it does not return once the
	// store is open.
	onErr func(error)
}

func (fs walWatchFS) watch(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walFile{File: f, onErr: fs.onErr}, nil
}

func (fs walWatchFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.watch(name, f, err)
}

func (fs walWatchFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.watch(newname, f, err)
}

func (fs walWatchFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, o...)
	return fs.watch(name, f, err)
}

type walFile struct {
	vfs.File
	onErr func(error)
}

func (f *walFile) seen(err error) error {
	if err != nil {
		f.onErr(err)
	}
	return err
}

func (f *walFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.seen(err)
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.seen(err)
}

func (f *walFile) Sync() error { return f.seen(f.File.Sync()) }

func (f *walFile) SyncData() error { return f.seen(f.File.SyncData()) }

func (f *walFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	return full, f.seen(err)
}
