package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	dblog "github.com/lni/dragonboat/v4/logger"
)

// dragonboat logs through its own logger (capnslog by default), which
// writes plain lines to stderr whatever --log-format says, and repeats a
// failing peer's dial errors several times a second for as long as the peer
// is down. Its loggers are routed into the member's slog logger instead
// (component=cluster), tagged with their dragonboat package, and each
// message format is written at most once per repeatEvery per package, with
// how many were held back since.

// repeatEvery is how often one dragonboat message format may be logged.
const repeatEvery = time.Minute

// raftLogTo is where dragonboat's lines go: the logger of the member
// started last (dragonboat's loggers are process-wide).
var raftLogTo atomic.Pointer[slog.Logger]

var routeRaftLogs = sync.OnceFunc(func() {
	dblog.SetLoggerFactory(func(pkg string) dblog.ILogger {
		return &raftLogger{pkg: pkg, level: dblog.WARNING, repeats: newRepeats(repeatEvery)}
	})
	for _, name := range []string{"config", "dragonboat", "gossip", "grpc", "logdb", "LogDB", "pebblekv",
		"raftpb", "registry", "rsm", "server", "settings", "tan", "tools", "transport"} {
		dblog.GetLogger(name).SetLevel(dblog.WARNING)
	}
	// raft logs every election step as a warning; a failover is normal.
	dblog.GetLogger("raft").SetLevel(dblog.ERROR)
})

// raftLogger is one dragonboat package's logger.
type raftLogger struct {
	pkg     string
	mu      sync.Mutex // guards level and repeats
	level   dblog.LogLevel
	repeats *repeats
}

func (l *raftLogger) SetLevel(level dblog.LogLevel) {
	l.mu.Lock()
	l.level = level
	l.mu.Unlock()
}

func (l *raftLogger) Debugf(format string, args ...any) {
	l.logf(dblog.DEBUG, slog.LevelDebug, format, args)
}
func (l *raftLogger) Infof(format string, args ...any) {
	l.logf(dblog.INFO, slog.LevelInfo, format, args)
}
func (l *raftLogger) Warningf(format string, args ...any) {
	l.logf(dblog.WARNING, slog.LevelWarn, format, args)
}
func (l *raftLogger) Errorf(format string, args ...any) {
	l.logf(dblog.ERROR, slog.LevelError, format, args)
}

// Panicf logs and panics, as dragonboat expects of it.
func (l *raftLogger) Panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.out().Error(msg, "dragonboat", l.pkg)
	panic(msg)
}

func (l *raftLogger) out() *slog.Logger {
	if lg := raftLogTo.Load(); lg != nil {
		return lg
	}
	return slog.Default()
}

func (l *raftLogger) logf(level dblog.LogLevel, to slog.Level, format string, args []any) {
	out := l.out()
	l.mu.Lock()
	if level > l.level || !out.Enabled(context.Background(), to) {
		l.mu.Unlock()
		return
	}
	emit, held := l.repeats.allow(format, time.Now())
	l.mu.Unlock()
	if !emit {
		return
	}
	attrs := []any{"dragonboat", l.pkg}
	if held > 0 {
		attrs = append(attrs, "repeated", held)
	}
	out.Log(context.Background(), to, fmt.Sprintf(format, args...), attrs...)
}

// repeats decides which lines of one logger are written: the first of each
// format, then at most one per interval, carrying how many it held back.
// It is a pure state machine on the times it is given.
type repeats struct {
	every time.Duration
	last  map[string]time.Time // format -> when it was last written
	held  map[string]int       // format -> held back since
}

// maxFormats bounds what repeats remembers; dragonboat's formats are
// constants, so it is only a guard.
const maxFormats = 1024

func newRepeats(every time.Duration) *repeats {
	return &repeats{every: every, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line of this format is written at now, and how
// many of it were held back since the last one written.
func (r *repeats) allow(format string, now time.Time) (bool, int) {
	last, seen := r.last[format]
	if seen && now.Sub(last) < r.every {
		r.held[format]++
		return false, 0
	}
	if !seen && len(r.last) >= maxFormats {
		clear(r.last)
		clear(r.held)
	}
	held := r.held[format]
	r.last[format] = now
	delete(r.held, format)
	return true, held
}
