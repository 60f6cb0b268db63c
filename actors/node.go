package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/actors/refusals"
	"github.com/webhookops/webhookops/wal"
)

var (
	// ErrUnavailable: the node cannot take the request now (storage
	// failed, or it is shutting down). Ingress answers 503.
	ErrUnavailable = errors.New("actors: unavailable")
	// ErrUnknownSource: no such source, or it is disabled.
	ErrUnknownSource = errors.New("actors: unknown source")
	// ErrNotFound: no such object.
	ErrNotFound = errors.New("actors: not found")
	// ErrConflict: the object already exists.
	ErrConflict = errors.New("actors: already exists")
	// ErrElsewhere: a cluster member was asked for what another member
	// does (a replay of a destination it does not deliver).
	ErrElsewhere = errors.New("actors: done by another cluster member")
)

// Deliverer makes one delivery attempt. *delivery.Client is the real one.
// Deliver bounds the attempt by d's timeout itself: the node passes its own
// context, which is cancelled only when it stops.
type Deliverer interface {
	Deliver(ctx context.Context, d model.Destination, r delivery.Request) delivery.Result
}

// Config configures a node. A zero field means the default.
type Config struct {
	DB        *wal.DB
	Deliverer Deliverer
	Clock     Clock
	Logger    *slog.Logger
	Metrics   *Metrics
	// Shards is the number of ingress shard actors.
	Shards int
	// DedupeWindow is how long an idempotency key is remembered.
	DedupeWindow time.Duration
	// Retention is how long finished events are kept; it is at least the
	// dedupe window. Events still pending are kept however old.
	Retention time.Duration
	// AuditRetention is how long audit entries are kept.
	AuditRetention time.Duration
	// RefusalRetention is how long refusal rows (the tallies of requests
	// refused before authentication) are kept: shorter than audit's, since
	// strangers choose how many there are. Never longer than
	// AuditRetention: a longer value is cut to it.
	RefusalRetention time.Duration
	// Refusals tallies refused requests for the audit log (see Rejected);
	// share one with the tunnel's registry. Nil: the node starts its own,
	// writing every RejectionInterval, and closes it.
	Refusals *refusals.Tally
	// RejectionInterval is the interval of a tally the node starts itself.
	RejectionInterval time.Duration
	// PassivateAfter stops an idle destination actor.
	PassivateAfter time.Duration
	// QueueWindow is how many pending entries a destination keeps in memory.
	QueueWindow int
	// DrainTimeout bounds how long Close waits for in-flight attempts.
	DrainTimeout time.Duration
	// Rand returns a uniform int64 in [0, n); nil is math/rand/v2.
	Rand func(n int64) int64
	// OrderedPipeline is how many events an ordered destination may have
	// handed to its delivery line or finished with their outcome not yet
	// durable, together, while the next ones go (destsm.Params.Pipeline):
	// a crash re-sends at most that many. 1 waits for each outcome before
	// the next attempt.
	OrderedPipeline int
	// Member: the node is a cluster member's (see member.go). It recovers
	// nothing at start and runs destination actors only for the
	// partitions it is told it owns, writing through UseMember's writer.
	Member bool
	// OnChange is told of every configuration change once it is durable,
	// one at a time, in order. It must not block for long.
	OnChange func(old, next *Snapshot)

	hooks testHooks
}

// testHooks let this package's tests inject faults where no real part can
// be made to fail on demand.
type testHooks struct {
	// enqueue runs in a destination actor before it handles an enqueue.
	enqueue func(dest string, ev *wal.Event)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Shards:           2 * runtime.GOMAXPROCS(0),
		DedupeWindow:     72 * time.Hour,
		Retention:        30 * 24 * time.Hour,
		AuditRetention:   90 * 24 * time.Hour,
		RefusalRetention: 7 * 24 * time.Hour,
		PassivateAfter:   2 * time.Minute,
		QueueWindow:      1024,
		OrderedPipeline:  destsm.DefaultPipeline,
		DrainTimeout:     10 * time.Second,
	}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.DB == nil {
		return errors.New("actors: Config.DB is required")
	}
	if c.Deliverer == nil {
		return errors.New("actors: Config.Deliverer is required")
	}
	if c.Shards < 0 || c.QueueWindow < 0 || c.DedupeWindow < 0 || c.AuditRetention < 0 || c.RefusalRetention < 0 || c.RejectionInterval < 0 || c.OrderedPipeline < 0 {
		return errors.New("actors: negative size in Config")
	}
	return nil
}

// Node is one WebhookOps node: its ingress shards, destination actors and
// configuration, over one store.
type Node struct {
	cfg       Config
	db        *wal.DB
	clock     Clock
	log       *slog.Logger
	metrics   *Metrics
	deliverer Deliverer
	rand      func(int64) int64
	system    *actor.ActorSystem
	shards    []*actor.PID
	dests     *registry
	replays   *replays
	writer    QueueWriter
	member    Member // a cluster member's (UseMember); nil for a single node
	gauges    *queueGauges

	ctx        context.Context // cancelled when attempts must stop
	cancel     context.CancelFunc
	attemptsMu sync.Mutex // guards attempts.Add against Close's Wait
	draining   bool       // guarded by attemptsMu: no new attempts
	attempts   sync.WaitGroup
	// workers runs shard and destination mailbox turns and attempts.
	workers *workers

	cfgMu    sync.Mutex // serialises configuration writes
	snapshot atomic.Pointer[Snapshot]
	// replicator: a cluster member's metadata shard, which takes every
	// configuration change (replicated.go); nil for a single node.
	replicator atomic.Pointer[ConfigReplicator]
	tokenGen   atomic.Uint64 // counts changes to the stored admin tokens

	ready     atomic.Bool
	closing   atomic.Bool
	closeOnce sync.Once
	sweepStop chan struct{}
	sweepDone chan struct{}
	refusals  *refusals.Tally
	ownTally  bool // refusals was started by the node, which closes it
}

// Start loads the configuration, recovers what the last run left (outbox
// entries and pending queues) and starts the actors. It returns once
// recovery is done.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := DefaultConfig()
	if cfg.Shards == 0 {
		cfg.Shards = def.Shards
	}
	if cfg.DedupeWindow == 0 {
		cfg.DedupeWindow = def.DedupeWindow
	}
	if cfg.Retention == 0 {
		cfg.Retention = def.Retention
	}
	if cfg.AuditRetention == 0 {
		cfg.AuditRetention = def.AuditRetention
	}
	if cfg.RefusalRetention == 0 {
		cfg.RefusalRetention = def.RefusalRetention
	}
	cfg.RefusalRetention = min(cfg.RefusalRetention, cfg.AuditRetention)
	if cfg.Retention < cfg.DedupeWindow {
		return nil, fmt.Errorf("actors: retention (%v) must be at least the dedupe window (%v)", cfg.Retention, cfg.DedupeWindow)
	}
	if cfg.PassivateAfter == 0 {
		cfg.PassivateAfter = def.PassivateAfter
	}
	if cfg.QueueWindow == 0 {
		cfg.QueueWindow = def.QueueWindow
	}
	if cfg.OrderedPipeline == 0 {
		cfg.OrderedPipeline = def.OrderedPipeline
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = def.DrainTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Rand == nil {
		cfg.Rand = func(n int64) int64 {
			if n <= 0 {
				return 0
			}
			return rand.Int64N(n)
		}
	}
	n := &Node{
		cfg:       cfg,
		db:        cfg.DB,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		deliverer: cfg.Deliverer,
		rand:      cfg.Rand,
		writer:    localWriter{cfg.DB},
		gauges:    newQueueGauges(),
		sweepStop: make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if n.refusals = cfg.Refusals; n.refusals == nil {
		n.refusals, n.ownTally = refusals.Start(cfg.DB, cfg.RejectionInterval, cfg.Logger), true
	}
	n.dests = newRegistry(n)
	if err := n.loadConfig(); err != nil {
		n.cancel()
		return nil, err
	}
	if err := n.countQueues(); err != nil {
		n.cancel()
		return nil, err
	}
	n.workers = newWorkers()
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		// protoactor logs every start and dead letter at info; keep warnings.
		return slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("component", "actors")
	}))
	for i := 0; i < cfg.Shards; i++ {
		idx := i
		props := actor.PropsFromProducer(func() actor.Actor { return &shard{n: n, index: idx} },
			actor.WithGuardian(supervision()), actor.WithDispatcher(n.workers))
		n.shards = append(n.shards, n.system.Root.Spawn(props))
	}
	go n.sweepLoop()
	var err error
	if n.replays, err = startReplays(n); err != nil {
		n.Close()
		return nil, err
	}
	if !cfg.Member {
		if err := n.recover(); err != nil {
			n.Close()
			return nil, err
		}
	}
	n.ready.Store(true)
	return n, nil
}

// supervision restarts a failed actor with a backoff, so a storage hiccup
// is retried without a tight loop.
func supervision() actor.SupervisorStrategy {
	return actor.NewExponentialBackoffStrategy(10*time.Second, 100*time.Millisecond)
}

func (n *Node) spawnDestination(slug string, e *destEntry) *actor.PID {
	props := actor.PropsFromProducer(func() actor.Actor { return &destination{n: n, slug: slug, entry: e} },
		actor.WithGuardian(supervision()), actor.WithDispatcher(n.workers))
	return n.system.Root.Spawn(props)
}

// recover wakes every destination with a pending queue and re-sends what is
// left in the outbox, oldest event first.
func (n *Node) recover() error {
	dests, err := n.db.DestsWithPending()
	if err != nil {
		return fmt.Errorf("actors.recover: %w", err)
	}
	for _, d := range dests {
		n.dests.send(d, wakeMsg{})
	}
	var outbox []wal.OutboxEntry
	for p := 0; p < n.db.Partitions(); p++ {
		if err := n.db.ScanOutbox(uint16(p), func(e wal.OutboxEntry) { outbox = append(outbox, e) }); err != nil {
			return fmt.Errorf("actors.recover: %w", err)
		}
	}
	sort.Slice(outbox, func(i, j int) bool { return outbox[i].EventSeq < outbox[j].EventSeq })
	var last *wal.Event
	for _, o := range outbox {
		if last == nil || last.Seq != o.EventSeq {
			if last, err = n.db.GetEvent(o.EventPart, o.EventSeq); err != nil {
				return fmt.Errorf("actors.recover: %w", err)
			}
		}
		n.dests.send(o.Dest, &enqueueMsg{ev: last, fromOutbox: true})
	}
	if len(dests)+len(outbox) > 0 {
		n.log.Info("recovered", "destinations_with_pending", len(dests), "outbox_entries", len(outbox))
	}
	return nil
}

// countQueues counts every destination's queue and dead letters once, for
// the gauges the destination actors keep from then on.
func (n *Node) countQueues() error {
	counts, err := n.db.CountByDestination()
	if err != nil {
		return fmt.Errorf("actors.countQueues: %w", err)
	}
	for dest, c := range counts {
		n.gauges.get(dest).set(int64(c.Depth), int64(c.Dead))
	}
	return nil
}

// sweepEvery is how often the shards drop settled keys from memory;
// retentionEvery how often finished events past retention are deleted.
const (
	sweepEvery     = time.Minute
	retentionEvery = time.Hour
)

// sweepLoop expires old dedupe keys from the shards every minute and old
// finished events from the store every hour, both by the node's Clock; a
// cluster member's also hands orphaned events to their ordered
// destinations every minute (orphans.go).
func (n *Node) sweepLoop() {
	defer close(n.sweepDone)
	tick := make(chan struct{}, 1)
	arm := func() Timer {
		return n.clock.AfterFunc(sweepEvery, func() {
			select {
			case tick <- struct{}{}:
			default: // the loop is behind: one tick is enough
			}
		})
	}
	t := arm()
	defer func() { t.Stop() }()
	var lastRetention time.Time
	var orphans map[orphanKey]time.Time
	for {
		select {
		case <-n.sweepStop:
			return
		case <-tick:
			t = arm()
			for _, pid := range n.shards {
				n.system.Root.Send(pid, sweepMsg{})
			}
			if n.cfg.Member {
				orphans = n.sweepOrphans(orphans)
			}
			if now := n.clock.Now(); now.Sub(lastRetention) >= retentionEvery {
				lastRetention = now
				n.expire()
			}
		}
	}
}

func (n *Node) expire() {
	cutoff := n.clock.Now().Add(-n.cfg.Retention)
	events := func(limit int) (int, error) {
		x, err := n.db.ExpireEvents(cutoff, limit)
		if err != nil {
			return 0, err
		}
		for dest, k := range x.Dead {
			n.dests.send(dest, deadExpiredMsg{n: int64(k)})
		}
		return x.Events, nil
	}
	if k := n.sweepAll("retention", events); k > 0 {
		n.log.Info("retention: expired finished events", "events", k, "received_before", cutoff)
	}
	// Refusal rows first: their cutoff is the later one.
	refusalCutoff := n.clock.Now().Add(-n.cfg.RefusalRetention)
	if k := n.sweepAll("refusal retention", func(limit int) (int, error) { return n.db.ExpireRefusals(refusalCutoff, limit) }); k > 0 {
		n.log.Info("retention: expired refusal rows", "entries", k, "written_before", refusalCutoff)
	}
	auditCutoff := n.clock.Now().Add(-n.cfg.AuditRetention)
	if k := n.sweepAll("audit retention", func(limit int) (int, error) { return n.db.ExpireAudit(auditCutoff, limit) }); k > 0 {
		n.log.Info("retention: expired audit entries", "entries", k, "written_before", auditCutoff)
	}
}

// sweepAll calls expire in slices of 10,000 until a slice comes back short
// or the node stops, and returns how many it deleted.
func (n *Node) sweepAll(what string, expire func(limit int) (int, error)) int {
	const limit = 10000
	total := 0
	for {
		select {
		case <-n.sweepStop:
			return total
		default:
		}
		k, err := expire(limit)
		total += k
		if err != nil {
			n.log.Error(what+" sweep failed", "err", err)
			return total
		}
		if k < limit {
			return total
		}
	}
}

// Rejected tallies a refused request for the audit log: one row per
// action, object and reason per interval, never one per request (package
// refusals). It never blocks.
func (n *Node) Rejected(r refusals.Rejection) {
	if r.At.IsZero() {
		r.At = n.clock.Now()
	}
	n.refusals.Add(r)
}

// Ready reports whether recovery is done and the node takes traffic.
func (n *Node) Ready() bool { return n.ready.Load() && !n.closing.Load() }

// DB is the node's store, for read paths (admin).
func (n *Node) DB() *wal.DB { return n.db }

// Clock is the node's clock.
func (n *Node) Clock() Clock { return n.clock }

// Close stops taking events, lets in-flight attempts finish within
// DrainTimeout, then stops the actors. It does not close the store.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		if n.ownTally {
			n.refusals.Close()
		}
		close(n.sweepStop)
		if n.system != nil {
			<-n.sweepDone
		}
		if n.system == nil {
			n.cancel()
			return
		}
		if n.replays != nil {
			n.replays.stopScans()
		}
		n.attemptsMu.Lock()
		n.draining = true
		n.attemptsMu.Unlock()
		done := make(chan struct{})
		go func() { n.attempts.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(n.cfg.DrainTimeout):
			n.log.Warn("drain timeout: cancelling in-flight attempts", "timeout", n.cfg.DrainTimeout)
			n.cancel()
			<-done
		}
		n.cancel()
		n.dests.stopAll()
		if n.replays != nil {
			n.replays.stop()
		}
		for _, pid := range n.shards {
			n.system.Root.StopFuture(pid).Wait()
		}
		n.system.Shutdown()
		if !n.workers.stop(n.cfg.DrainTimeout) {
			n.log.Warn("actor turns still running after shutdown", "waited", n.cfg.DrainTimeout)
		}
	})
}

// IngestRequest is one verified webhook.
type IngestRequest struct {
	Source     string
	IdemKey    string
	EventType  string
	Headers    [][2]string
	Body       []byte
	ReceivedAt time.Time
}

// IngestResult is what the sender is told.
type IngestResult struct {
	EventID   string
	Duplicate bool
}

// Ingest persists one event and hands it to its destinations. It returns
// only after the event is durable (or is a duplicate of a durable one).
func (n *Node) Ingest(ctx context.Context, r IngestRequest, src *SourceView) (IngestResult, error) {
	if n.closing.Load() {
		return IngestResult{}, fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = n.clock.Now().UTC()
	}
	ev := &wal.Event{
		Source:       r.Source,
		IdemKey:      r.IdemKey,
		EventType:    r.EventType,
		ReceivedAt:   r.ReceivedAt,
		Headers:      r.Headers,
		Body:         r.Body,
		Destinations: src.Source.Targets(r.EventType),
	}
	part := n.db.EventPartition(r.Source, r.IdemKey)
	msg := &ingestMsg{part: part, ev: ev, reply: make(chan ingestReply, 1)}
	n.system.Root.Send(n.shards[int(part)%len(n.shards)], msg)
	var rep ingestReply
	select {
	case rep = <-msg.reply:
	case <-ctx.Done():
		return IngestResult{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	if rep.wait != nil {
		select {
		case <-rep.wait.done:
		case <-ctx.Done():
			return IngestResult{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
		if rep.wait.err != nil {
			return IngestResult{}, fmt.Errorf("%w: %v", ErrUnavailable, rep.wait.err)
		}
		n.auditDuplicate(ev, rep.eventID)
	}
	if rep.err != nil {
		n.metrics.received(r.Source, "storage_error")
		return IngestResult{}, fmt.Errorf("%w: %v", ErrUnavailable, rep.err)
	}
	if rep.duplicate {
		n.metrics.received(r.Source, "duplicate")
	}
	return IngestResult{EventID: rep.eventID, Duplicate: rep.duplicate}, nil
}

func (n *Node) auditDuplicate(ev *wal.Event, original string) {
	n.Audit(wal.AuditEntry{At: ev.ReceivedAt, Action: "event.duplicate", ObjectType: "event", ObjectID: original,
		Detail: map[string]string{"source": ev.Source, "idempotency_key": ev.IdemKey}})
}

// Audit records an entry without waiting for it to be durable.
func (n *Node) Audit(e wal.AuditEntry) {
	b := n.db.NewBatch()
	b.Audit(e)
	n.db.Commit(b, nil)
}

// DestinationStats asks a destination's actor for its queue state.
func (n *Node) DestinationStats(ctx context.Context, slug string) (DestinationStats, error) {
	reply := make(chan DestinationStats, 1)
	if n.member != nil && !n.dests.owns(slug) {
		return n.storedStats(slug)
	}
	if !n.dests.send(slug, statsMsg{reply: reply}) {
		return DestinationStats{}, ErrUnavailable
	}
	select {
	case s := <-reply:
		return s, nil
	case <-ctx.Done():
		return DestinationStats{}, ctx.Err()
	}
}

// storedStats is what a cluster member that does not deliver slug knows of
// its queue: this replica's queue and dead letters. In flight and the
// circuit are the owner's to tell.
func (n *Node) storedStats(slug string) (DestinationStats, error) {
	depth, err := n.db.QueueDepth(slug)
	if err != nil {
		return DestinationStats{}, err
	}
	dead, err := n.db.CountDead(slug)
	if err != nil {
		return DestinationStats{}, err
	}
	s := DestinationStats{QueueDepth: depth, DeadLetters: dead, Circuit: "elsewhere"}
	if page, err := n.db.QueuePage(slug, 0, 1); err == nil && len(page) == 1 {
		if ev, err := n.db.GetEvent(page[0].EventPart, page[0].EventSeq); err == nil {
			s.OldestPendingAt = ev.ReceivedAt
		}
	}
	return s, nil
}

// LiveDestinations is how many destination actors are in memory.
func (n *Node) LiveDestinations() int { return n.dests.live() }

// Metrics are the node's collectors.
func (n *Node) Metrics() *Metrics { return n.metrics }

// Refusals is the node's tally of refused requests (a Prometheus
// collector of webhookops_refusals_total as well).
func (n *Node) Refusals() *refusals.Tally { return n.refusals }

// minLevel drops records below its level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}

func (h minLevel) WithGroup(g string) slog.Handler { return minLevel{h.Handler.WithGroup(g), h.min} }

// beginAttempt counts a delivery goroutine about to start; false once the
// node is draining.
func (n *Node) beginAttempt() bool {
	n.attemptsMu.Lock()
	defer n.attemptsMu.Unlock()
	if n.draining {
		return false
	}
	n.attempts.Add(1)
	return true
}
