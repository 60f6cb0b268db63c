package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

// partitionShardBase + p is partition p's raft shard id. Ids below it are
// kept for the metadata shard and others to come.
const partitionShardBase = 100

// PartitionShard is the raft shard id of partition p.
func PartitionShard(p uint16) uint64 { return partitionShardBase + uint64(p) }

// Config configures a cluster member. A zero field means the default.
type Config struct {
	// NodeID is this member's id (> 0), its raft replica id in every shard.
	NodeID uint64
	// RaftAddr is host:port where this member's raft transport listens and
	// where the others reach it; it must be Members[NodeID].
	RaftAddr string
	// Members are the initial members, id to raft address. On a restart
	// they must be given again as they were (dragonboat checks), but the
	// membership is in the raft logs: later changes hold.
	Members map[uint64]string
	// Join: this member was added to a running cluster (AddNode) and
	// starts, or restarts, with no Members.
	Join bool
	// Dir holds dragonboat's raft logs and snapshots.
	Dir string
	// DB is the store the partitions apply to.
	DB *wal.DB
	// RTT is the raft tick; elections time out after ElectionRTT ticks.
	RTT         time.Duration
	ElectionRTT uint64
	// DedupeWindow travels in every ingest entry, so replicas decide the
	// same whatever their own flags.
	DedupeWindow time.Duration
	// ProposeTimeout bounds one ingest's wait for its commit, retries
	// through an election included.
	ProposeTimeout time.Duration
	Now            func() time.Time
	Logger         *slog.Logger
	// Audit records a node-local audit entry (not replicated).
	Audit func(wal.AuditEntry)
	// Engine delivers: it runs a destination's actor only while this
	// member owns the destination's partition. Nil: the member stores and
	// replicates but delivers nothing (tests of replication alone).
	Engine Engine
	// TLS turns on mutual TLS for raft traffic; required unless every
	// member is on a loopback address (CheckTransport).
	TLS TLSFiles
	// Configs applies the metadata shard's committed configuration
	// changes (the member's *actors.Node), and takes this member's
	// proposals of them. Nil: no metadata shard runs (tests of the
	// partitions alone). It needs SealKey.
	Configs ConfigApplier
	// SealKey seals what the metadata shard carries (seal.go).
	SealKey *SealKey
	// AdminURL is this member's admin API base URL as the other members
	// reach it; the member records it in its member record (adminurl.go),
	// "" recording that it has none.
	AdminURL string
}

// DefaultConfig returns the defaults: a 50 ms tick and elections after
// 10-20 ticks, so a lost leader is replaced in about a second.
func DefaultConfig() Config {
	return Config{RTT: 50 * time.Millisecond, ElectionRTT: 10, DedupeWindow: 72 * time.Hour, ProposeTimeout: 5 * time.Second}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.NodeID == 0 {
		return errors.New("cluster: node id must be above 0")
	}
	if c.DB == nil {
		return errors.New("cluster: Config.DB is required")
	}
	if c.Configs != nil && c.SealKey == nil {
		return errors.New("cluster: a member needs the cluster sealing key (--cluster-seal-key)")
	}
	if c.Dir == "" {
		return errors.New("cluster: Config.Dir is required")
	}
	if c.Join {
		if len(c.Members) > 0 {
			return errors.New("cluster: a joining member takes no initial members (the cluster it joins has them)")
		}
		if err := CheckTransport(map[uint64]string{c.NodeID: c.RaftAddr}, c.TLS); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		return nil
	}
	addr, ok := c.Members[c.NodeID]
	if !ok {
		return fmt.Errorf("cluster: node %d is not among the initial members", c.NodeID)
	}
	if addr != c.RaftAddr {
		return fmt.Errorf("cluster: node %d is %s in the initial members but listens on %s", c.NodeID, addr, c.RaftAddr)
	}
	if err := CheckTransport(c.Members, c.TLS); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// ParseMembers parses "1=host:port,2=host:port,...".
func ParseMembers(s string) (map[uint64]string, error) {
	seen := map[string]uint64{}
	return ParseIDList(s, "host:port", func(n uint64, addr string) (string, error) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", err
		}
		if other, dup := seen[addr]; dup {
			return "", fmt.Errorf("members %d and %d share the address %s", other, n, addr)
		}
		seen[addr] = n
		return addr, nil
	})
}

// ParseIDList parses a list of members' values, "1=v,2=v,...": ids above
// 0, each once, at least one; check sees each value (its id first) and
// returns it as kept. want names the value in errors ("host:port").
func ParseIDList(s, want string, check func(id uint64, v string) (string, error)) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("member %q: want id=%s", part, want)
		}
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("member %q: the id must be a number above 0", part)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("member id %d appears twice", n)
		}
		if out[n], err = check(n, v); err != nil {
			return nil, fmt.Errorf("member %q: %w", part, err)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no members")
	}
	return out, nil
}

// Engine is the node that delivers for a member (*actors.Node). The
// member tells it which partitions it owns and what the partitions
// applied; the engine runs a destination's actor only while it owns the
// destination's partition, and starts an attempt only while Member.Leased
// says so.
type Engine interface {
	// UseMember is called once, before anything else.
	UseMember(actors.Member)
	// Own and Disown are called from one goroutine, alternately per
	// partition.
	Own(part uint16)
	Disown(part uint16)
	// EventApplied and InboxApplied come from apply goroutines and must
	// not block.
	EventApplied(ev *wal.Event, inboxed []string)
	InboxApplied(dest string, part uint16, seq uint64)
	// Ordered reports whether dest keeps order: its events get an inbox
	// entry in dest's partition before the sender hears 2xx.
	Ordered(dest string) bool
}

// Cluster is this node's membership: a dragonboat NodeHost with a replica
// of every partition.
type Cluster struct {
	cfg    Config
	nh     *dragonboat.NodeHost
	log    *slog.Logger
	part   int
	writer *Writer
	// leaseFor is how long a confirmation of leadership lets this node
	// deliver: no other member can be elected sooner (see Leased).
	leaseFor time.Duration

	mu     sync.Mutex           // guards owned and lease
	owned  map[uint16]Fence     // partitions whose takeover by this node is applied
	lease  map[uint16]time.Time // owned partitions: deliveries may start until then
	kick   chan struct{}        // a leader or an owner changed somewhere
	closed chan struct{}
	wg     sync.WaitGroup // ownLoop and its proposals and reads

	reporter *tunnelReporter // guarded by mu; nil until ReportTunnel
	inbox    *inboxProposer
	meta     *metaShard // nil without Config.Configs
}

// replicaConfig is this member's raft settings for one shard: every shard
// checks its quorum and pre-votes (a member back from a stop or a
// partition does not depose a working leader); they differ in how often
// they snapshot.
func (c *Cluster) replicaConfig(shard, snapshotEntries, compactionOverhead uint64) config.Config {
	return config.Config{
		ReplicaID:          c.cfg.NodeID,
		ShardID:            shard,
		CheckQuorum:        true,
		PreVote:            true,
		ElectionRTT:        c.cfg.ElectionRTT,
		HeartbeatRTT:       1,
		SnapshotEntries:    snapshotEntries,
		CompactionOverhead: compactionOverhead,
	}
}

// Start joins the cluster: it starts the NodeHost and a replica of every
// partition, and returns without waiting for leaders.
func Start(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := DefaultConfig()
	if cfg.RTT == 0 {
		cfg.RTT = def.RTT
	}
	if cfg.ElectionRTT == 0 {
		cfg.ElectionRTT = def.ElectionRTT
	}
	if cfg.DedupeWindow == 0 {
		cfg.DedupeWindow = def.DedupeWindow
	}
	if cfg.ProposeTimeout == 0 {
		cfg.ProposeTimeout = def.ProposeTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	routeRaftLogs()
	raftLogTo.Store(cfg.Logger)
	c := &Cluster{cfg: cfg, log: cfg.Logger, part: cfg.DB.Partitions(), owned: map[uint16]Fence{},
		lease: map[uint16]time.Time{}, kick: make(chan struct{}, 1), closed: make(chan struct{}),
		leaseFor: time.Duration(cfg.ElectionRTT) * cfg.RTT * 4 / 5}
	c.writer = NewWriter(c, cfg.Audit)
	c.inbox = newInboxProposer(c)
	if cfg.Engine != nil {
		cfg.Engine.UseMember(c.writer)
	}
	nhc := config.NodeHostConfig{
		NodeHostDir:       filepath.Join(cfg.Dir, "nodehost"),
		WALDir:            filepath.Join(cfg.Dir, "wal"),
		RTTMillisecond:    uint64(cfg.RTT / time.Millisecond),
		RaftAddress:       cfg.RaftAddr,
		RaftEventListener: leaderListener{c},
		MutualTLS:         cfg.TLS.set(),
		CAFile:            cfg.TLS.CA,
		CertFile:          cfg.TLS.Cert,
		KeyFile:           cfg.TLS.Key,
		Expert: config.ExpertConfig{
			LogDB:  config.GetTinyMemLogDBConfig(),
			Engine: config.EngineConfig{ExecShards: 4, CommitShards: 4, ApplyShards: 4, SnapshotShards: 2, CloseShards: 2},
		},
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.nh = nh
	var members map[uint64]dragonboat.Target
	if !cfg.Join {
		members = map[uint64]dragonboat.Target{}
		for id, addr := range cfg.Members {
			members[id] = addr
		}
	}
	if cfg.Configs != nil {
		if err := c.startMeta(members); err != nil {
			nh.Close()
			return nil, err
		}
	}
	for p := 0; p < c.part; p++ {
		part := uint16(p)
		rc := c.replicaConfig(PartitionShard(part), 20000, 5000)
		factory := func(uint64, uint64) sm.IOnDiskStateMachine { return newPartitionSM(cfg.DB, part, c) }
		if err := nh.StartOnDiskReplica(members, cfg.Join, factory, rc); err != nil {
			nh.Close()
			return nil, fmt.Errorf("cluster: partition %d: %w", p, err)
		}
	}
	if err := c.startTunnelShard(members); err != nil {
		nh.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.ownLoop()
	return c, nil
}

// Close leaves: it stops proposing and closes the NodeHost. Idempotent.
func (c *Cluster) Close() {
	select {
	case <-c.closed:
		return
	default:
	}
	close(c.closed)
	c.wg.Wait()
	c.inbox.close()
	c.writer.Wait()
	c.nh.Close()
}

// Writer is the member's replicated writer of destination state.
func (c *Cluster) Writer() *Writer { return c.writer }

// NodeID is this member's id.
func (c *Cluster) NodeID() uint64 { return c.cfg.NodeID }

// Ingest proposes one event to its partition and returns once the entry
// is committed by a quorum and applied here: the event, its dedupe key and
// its outbox entries. Temporary failures (no leader during an election, a
// busy shard, a proposal that timed out) are retried until ctx or the
// propose timeout ends; a retry is safe because the state machine dedupes
// on the idempotency key, so at worst the sender hears "duplicate" of the
// event its first try stored.
func (c *Cluster) Ingest(ctx context.Context, r actors.IngestRequest, src *actors.SourceView) (actors.IngestResult, error) {
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = c.cfg.Now().UTC()
	}
	ev := &wal.Event{
		Source: r.Source, IdemKey: r.IdemKey, EventType: r.EventType, ReceivedAt: r.ReceivedAt,
		Headers: r.Headers, Body: r.Body, Destinations: src.Source.Targets(r.EventType),
	}
	part := wal.Partition(c.part, r.Source, r.IdemKey)
	var inboxed []int
	if c.cfg.Engine != nil {
		for i, d := range ev.Destinations {
			if c.cfg.Engine.Ordered(d) {
				inboxed = append(inboxed, i)
			}
		}
	}
	cmd := encodeIngestTo(c.cfg.DedupeWindow, inboxed, wal.EncodeEvent(ev))
	res, err := c.propose(ctx, part, cmd)
	if err != nil {
		return actors.IngestResult{}, err
	}
	switch res.Value {
	case ResultAccepted, ResultDuplicate:
	default:
		return actors.IngestResult{}, fmt.Errorf("%w: partition %d refused the event (result %d)", actors.ErrUnavailable, part, res.Value)
	}
	if len(res.Data) != 8 {
		return actors.IngestResult{}, fmt.Errorf("%w: partition %d answered no sequence", actors.ErrUnavailable, part)
	}
	seq := binary.BigEndian.Uint64(res.Data)
	id := wal.EventID(part, seq)
	dup := res.Value == ResultDuplicate
	// The ordered destinations' inbox entries, before the sender hears
	// 2xx; again for a duplicate, whose first try may have stopped short
	// of them (the state machine adds each at most once), but only for
	// the destinations the stored event has: a route added since must not
	// get an event from before it.
	if len(inboxed) > 0 {
		var routed []string
		if dup {
			stored, err := c.cfg.DB.GetEvent(part, seq)
			if err != nil {
				return actors.IngestResult{}, fmt.Errorf("%w: partition %d: reading the event this one duplicates: %v", actors.ErrUnavailable, part, err)
			}
			routed = stored.Destinations
		}
		refs := make([]inboxRef, 0, len(inboxed))
		for _, i := range inboxed {
			if dup && !slices.Contains(routed, ev.Destinations[i]) {
				continue
			}
			refs = append(refs, inboxRef{dest: ev.Destinations[i], part: part, seq: seq})
		}
		if err := c.inbox.propose(ctx, refs); err != nil {
			return actors.IngestResult{}, err
		}
	}
	if c.cfg.Audit != nil {
		a := wal.AuditEntry{At: ev.ReceivedAt, Action: "event.received", ObjectType: "event", ObjectID: id,
			Detail: map[string]string{"source": ev.Source, "idempotency_key": ev.IdemKey, "event_type": ev.EventType}}
		if dup {
			a.Action, a.Detail = "event.duplicate", map[string]string{"source": ev.Source, "idempotency_key": ev.IdemKey}
		}
		c.cfg.Audit(a)
	}
	return actors.IngestResult{EventID: id, Duplicate: dup}, nil
}

// propose commits cmd to part, retrying temporary failures until ctx or
// the propose timeout ends.
func (c *Cluster) propose(ctx context.Context, part uint16, cmd []byte) (sm.Result, error) {
	return c.proposeTo(ctx, PartitionShard(part), fmt.Sprintf("partition %d", part), cmd)
}

// proposeTo commits cmd to shard (named name in errors), retrying
// temporary failures until ctx or the propose timeout ends.
func (c *Cluster) proposeTo(ctx context.Context, shard uint64, name string, cmd []byte) (sm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ProposeTimeout)
	defer cancel()
	sess := c.nh.GetNoOPSession(shard)
	backoff := 20 * time.Millisecond
	for {
		// One try waits at most a second, so a proposal lost with a
		// leader is retried on the next one.
		try, cancelTry := context.WithTimeout(ctx, time.Second)
		res, err := c.nh.SyncPropose(try, sess, cmd)
		cancelTry()
		if err == nil {
			return res, nil
		}
		if !dragonboat.IsTempError(err) && !errors.Is(err, context.DeadlineExceeded) {
			return sm.Result{}, fmt.Errorf("%w: %s: %v", actors.ErrUnavailable, name, err)
		}
		select {
		case <-ctx.Done():
			return sm.Result{}, fmt.Errorf("%w: %s: %v", actors.ErrUnavailable, name, err)
		case <-c.closed:
			return sm.Result{}, fmt.Errorf("%w: leaving the cluster", actors.ErrUnavailable)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// ErrNotOwner: this node has no applied takeover of the partition in its
// current leadership, or the partition refused a write as fenced (a newer
// owner took over). The writer must stop: whatever it decided is someone
// else's to decide now.
var ErrNotOwner = errors.New("cluster: not the partition's owner")

// Write proposes an owner's writes (wal.Batch.EncodeOps: keys of part
// only) stamped with this node's applied takeover of part, and returns
// once they are committed and applied here. b is left to the caller.
func (c *Cluster) Write(ctx context.Context, part uint16, b *wal.Batch) error {
	c.mu.Lock()
	f, ok := c.owned[part]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: partition %d", ErrNotOwner, part)
	}
	ops, err := b.EncodeOps(part)
	if err != nil {
		return err
	}
	res, err := c.propose(ctx, part, encodeWrite(f.Term, f.Node, ops))
	if err != nil {
		return err
	}
	switch res.Value {
	case ResultAccepted:
		return nil
	case ResultFenced:
		c.mu.Lock()
		if c.owned[part] == f {
			delete(c.owned, part)
		}
		c.mu.Unlock()
		c.wake()
		return fmt.Errorf("%w: partition %d fenced term %d", ErrNotOwner, part, f.Term)
	default:
		return fmt.Errorf("cluster: partition %d refused a write (result %d)", part, res.Value)
	}
}

// AckOutbox proposes outbox deletions (b holds DeleteOutbox calls for
// part only). A destination's owner sends them after its enqueue into the
// destination's own partition was applied.
func (c *Cluster) AckOutbox(ctx context.Context, part uint16, b *wal.Batch) error {
	ops, err := b.EncodeOps(part)
	if err != nil {
		return err
	}
	res, err := c.propose(ctx, part, encodeAck(ops))
	if err != nil {
		return err
	}
	if res.Value != ResultAccepted {
		return fmt.Errorf("cluster: partition %d refused an outbox acknowledgement (result %d)", part, res.Value)
	}
	return nil
}

// leaderListener hears dragonboat's leader changes and wakes the
// ownership loop at once (it also runs every 100 ms on its own).
type leaderListener struct{ c *Cluster }

func (l leaderListener) LeaderUpdated(raftio.LeaderInfo) { l.c.wake() }

func (c *Cluster) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// ownLoop keeps ownership equal to leadership: where this node leads a
// partition in a term its applied takeover does not name, it proposes a
// takeover with that term; where it no longer leads, it stops owning at
// once (the fence would refuse its writes anyway). It owns a partition
// only once the takeover is applied (TakeoverApplied). It tells the engine
// what it owns, and renews the lease of every owned partition.
func (c *Cluster) ownLoop() {
	defer c.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	inflight := make([]bool, c.part)   // a takeover proposal is out
	renewing := make([]bool, c.part)   // a lease renewal is out
	engineOwns := make([]bool, c.part) // what the engine was last told
	done := make(chan uint16, c.part)
	renewed := make(chan uint16, c.part)
	defer func() {
		if c.cfg.Engine == nil {
			return
		}
		for p, own := range engineOwns {
			if own {
				c.cfg.Engine.Disown(uint16(p))
			}
		}
	}()
	for {
		select {
		case <-c.closed:
			return
		case p := <-done:
			inflight[p] = false
			continue
		case p := <-renewed:
			renewing[p] = false
			continue
		case <-c.kick:
		case <-t.C:
		}
		for p := 0; p < c.part; p++ {
			part := uint16(p)
			leader, term, valid, err := c.nh.GetLeaderID(PartitionShard(part))
			mine := err == nil && valid && leader == c.cfg.NodeID
			c.mu.Lock()
			f, owned := c.owned[part]
			if owned && (!mine || f.Term != term) {
				delete(c.owned, part)
				delete(c.lease, part)
				owned = false
			}
			c.mu.Unlock()
			if c.cfg.Engine != nil && owned != engineOwns[p] {
				engineOwns[p] = owned
				if owned {
					c.cfg.Engine.Own(part)
				} else {
					c.cfg.Engine.Disown(part)
				}
			}
			if owned && !renewing[p] {
				renewing[p] = true
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					c.renew(part, f)
					renewed <- part
				}()
			}
			if !mine || owned || inflight[p] {
				continue
			}
			inflight[p] = true
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				res, err := c.propose(ctx, part, encodeTakeover(term, c.cfg.NodeID))
				if err == nil && res.Value != ResultAccepted {
					c.log.Warn("takeover refused", "partition", part, "term", term, "result", res.Value)
				}
				done <- part
			}()
		}
	}
}

// renew confirms this node's leadership of part with a ReadIndex (a
// quorum answers a heartbeat of its term) and extends the lease from the
// moment the read was asked.
//
// Why that is safe: with CheckQuorum, a follower that heard the leader
// refuses to vote for anyone else for an election timeout (ElectionRTT
// ticks) afterwards, and the followers that answered this read heard it
// after it was asked. So no other member can become leader, and take the
// partition over, within leaseFor (four fifths of the election timeout)
// of the ask. A node that was stopped (SIGSTOP) and continues finds its
// lease long expired, by the monotonic clock, and starts no delivery
// before the ownership loop has caught up with the new leader.
func (c *Cluster) renew(part uint16, f Fence) {
	asked := time.Now()
	rs, err := c.nh.ReadIndex(PartitionShard(part), time.Second)
	if err != nil {
		return
	}
	defer rs.Release()
	select {
	case r := <-rs.ResultC():
		if !r.Completed() {
			return
		}
	case <-c.closed:
		return
	}
	// Served by this node as the leader in f's term: a read forwarded to
	// a new leader would have come with news of its term.
	leader, term, valid, err := c.nh.GetLeaderID(PartitionShard(part))
	if err != nil || !valid || leader != c.cfg.NodeID || term != f.Term {
		return
	}
	c.mu.Lock()
	if c.owned[part] == f {
		c.lease[part] = asked.Add(c.leaseFor)
	}
	c.mu.Unlock()
}

// Leased reports whether this node owns part and holds its lease: a
// delivery for one of its destinations may start now.
func (c *Cluster) Leased(part uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, owned := c.owned[part]
	return owned && time.Now().Before(c.lease[part])
}

// TakeoverApplied implements Observer. A takeover by this node counts
// only if this node still leads in the takeover's term: entries applied
// again after a restart name terms long gone.
func (c *Cluster) TakeoverApplied(part uint16, f Fence) {
	mine := false
	if f.Node == c.cfg.NodeID {
		leader, term, valid, err := c.nh.GetLeaderID(PartitionShard(part))
		mine = err == nil && valid && leader == c.cfg.NodeID && term == f.Term
	}
	c.mu.Lock()
	if mine {
		c.owned[part] = f
	} else {
		delete(c.owned, part)
		delete(c.lease, part)
	}
	c.mu.Unlock()
	c.wake()
}

// EventApplied implements Observer.
func (c *Cluster) EventApplied(ev *wal.Event, inboxed []string) {
	if c.cfg.Engine != nil {
		c.cfg.Engine.EventApplied(ev, inboxed)
	}
}

// InboxApplied implements Observer.
func (c *Cluster) InboxApplied(dest string, part uint16, seq uint64) {
	if c.cfg.Engine != nil {
		c.cfg.Engine.InboxApplied(dest, part, seq)
	}
}

// Owned lists the partitions this node owns, with their fences: its
// takeover is applied and no newer leader has been heard of.
func (c *Cluster) Owned() map[uint16]Fence {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint16]Fence, len(c.owned))
	for p, f := range c.owned {
		out[p] = f
	}
	return out
}

// ErrMembership: a membership change was refused as asked (the node is
// already a member, or is not one, or would leave no quorum).
var ErrMembership = errors.New("cluster: membership change refused")

// AddNode makes node id, whose raft transport listens at addr, a replica of
// every partition: one membership change committed in each partition
// (each needs its quorum). The new member then starts with Config.Join and
// catches up from the others (log or snapshot). An id is never used again
// once removed.
func (c *Cluster) AddNode(ctx context.Context, id uint64, addr string) error {
	if id == 0 {
		return fmt.Errorf("%w: node id 0", ErrMembership)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: address %q: %v", ErrMembership, addr, err)
	}
	if err := CheckTransport(map[uint64]string{id: addr}, c.cfg.TLS); err != nil {
		return fmt.Errorf("%w: %v", ErrMembership, err)
	}
	err := c.eachPartition(ctx, func(ctx context.Context, shard uint64, m *dragonboat.Membership) error {
		if a, ok := m.Nodes[id]; ok {
			if a == addr {
				return nil // added already (a retry)
			}
			return fmt.Errorf("%w: node %d is a member already, at %s", ErrMembership, id, a)
		}
		if _, gone := m.Removed[id]; gone {
			return fmt.Errorf("%w: node %d was removed; a replacement takes a new id", ErrMembership, id)
		}
		return c.nh.SyncRequestAddReplica(ctx, shard, id, addr, m.ConfigChangeID)
	})
	if err != nil {
		return err
	}
	return c.recordMembers(ctx, membersWire{Set: []MemberRecord{{ID: id, Address: addr, Added: c.cfg.Now().UTC()}}})
}

// RemoveNode removes node id from every partition (a dead member, before
// its replacement is added). A partition whose quorum would not survive
// without it refuses; raft makes the others' leader step in if it led.
func (c *Cluster) RemoveNode(ctx context.Context, id uint64) error {
	if id == c.cfg.NodeID {
		return fmt.Errorf("%w: node %d cannot remove itself; ask another member", ErrMembership, id)
	}
	err := c.eachPartition(ctx, func(ctx context.Context, shard uint64, m *dragonboat.Membership) error {
		if _, ok := m.Nodes[id]; !ok {
			return nil // not (or no longer) a member
		}
		if len(m.Nodes) <= 2 {
			return fmt.Errorf("%w: shard %d has %d members; removing one would leave no quorum to lose", ErrMembership, shard, len(m.Nodes))
		}
		return c.nh.SyncRequestDeleteReplica(ctx, shard, id, m.ConfigChangeID)
	})
	if err != nil {
		return err
	}
	return c.recordMembers(ctx, membersWire{Remove: []uint64{id}})
}

// eachPartition reads every shard's membership (the tunnel directory's,
// then every partition's, linearizably) and runs change on it, one shard
// after another; it stops at the first
// error. A change already made is skipped by change itself, so a retry
// (of one try lost with a dead leader, or of the whole call after a
// partial failure) finishes the job. Each partition gets 20 s, in tries of
// 2 s: a request to a leader that just died is dropped, not refused.
func (c *Cluster) eachPartition(ctx context.Context, change func(context.Context, uint64, *dragonboat.Membership) error) error {
	shards := []uint64{TunnelShard}
	if c.meta != nil {
		shards = append(shards, MetaShard)
	}
	for p := 0; p < c.part; p++ {
		shards = append(shards, PartitionShard(uint16(p)))
	}
	for _, shard := range shards {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := func() error {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				m, err := c.nh.SyncGetShardMembership(ctx, shard)
				if err != nil {
					return err
				}
				return change(ctx, shard, m)
			}()
			if err == nil {
				break
			}
			retry := dragonboat.IsTempError(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dragonboat.ErrRejected)
			if !retry || time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("shard %d: %w", shard, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Status is the cluster as this node sees it.
type Status struct {
	NodeID     uint64
	Nodes      []NodeStatus
	Partitions []PartitionStatus
	// Meta is the metadata shard; Recorded the members it records
	// (members.go). Nil without a metadata shard.
	Meta     *MetaStatus
	Recorded map[uint64]MemberRecord
}

// NodeStatus is one member.
type NodeStatus struct {
	ID        uint64
	Address   string
	Reachable bool // a TCP connection to its raft address opened just now
	Leads     int
}

// PartitionStatus is one partition as this node sees it.
type PartitionStatus struct {
	Partition uint16
	Replicas  []uint64
	Leader    uint64 // 0: none known
	Term      uint64
	// Owner is the node whose takeover was last applied here, in OwnerTerm.
	Owner, OwnerTerm uint64
	Applied          uint64
	// Delivering: this node owns the partition and holds its lease now.
	Delivering bool
}

// Partitions reports every partition as this node sees it, without
// asking anyone (for metrics).
func (c *Cluster) Partitions() ([]PartitionStatus, error) {
	parts, _, err := c.partitions()
	return parts, err
}

func (c *Cluster) partitions() ([]PartitionStatus, map[uint64]string, error) {
	info := c.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	shards := map[uint64]int{}
	for i, si := range info.ShardInfoList {
		shards[si.ShardID] = i
	}
	addrs := map[uint64]string{c.cfg.NodeID: c.cfg.RaftAddr}
	out := make([]PartitionStatus, 0, c.part)
	for p := 0; p < c.part; p++ {
		part := uint16(p)
		ps := PartitionStatus{Partition: part, Delivering: c.Leased(part)}
		if i, ok := shards[PartitionShard(part)]; ok {
			si := info.ShardInfoList[i]
			for id, a := range si.Replicas {
				ps.Replicas = append(ps.Replicas, id)
				addrs[id] = a
			}
			sort.Slice(ps.Replicas, func(i, j int) bool { return ps.Replicas[i] < ps.Replicas[j] })
		}
		if leader, term, valid, err := c.nh.GetLeaderID(PartitionShard(part)); err == nil && valid {
			ps.Leader, ps.Term = leader, term
		}
		rs, err := c.cfg.DB.ReadReplicaState(part)
		if err != nil {
			return nil, nil, err
		}
		ps.Owner, ps.OwnerTerm, ps.Applied = rs.FenceNode, rs.FenceTerm, rs.Applied
		out = append(out, ps)
	}
	return out, addrs, nil
}

// Status reports members and partitions. Reachability is a TCP dial of
// each member's raft address, bounded by ctx and half a second.
func (c *Cluster) Status(ctx context.Context) (Status, error) {
	st := Status{NodeID: c.cfg.NodeID}
	parts, addrs, err := c.partitions()
	if err != nil {
		return Status{}, err
	}
	st.Partitions = parts
	if err := c.addMembership(&st, addrs); err != nil {
		return Status{}, err
	}
	leads := map[uint64]int{}
	for _, p := range parts {
		if p.Leader != 0 {
			leads[p.Leader]++
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	st.Nodes = make([]NodeStatus, 0, len(addrs))
	for id, a := range addrs {
		st.Nodes = append(st.Nodes, NodeStatus{ID: id, Address: a, Leads: leads[id]})
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if n.ID == c.cfg.NodeID {
			n.Reachable = true
			continue
		}
		wg.Go(func() {
			var d net.Dialer
			if conn, err := d.DialContext(ctx, "tcp", n.Address); err == nil {
				conn.Close()
				n.Reachable = true
			}
		})
	}
	wg.Wait()
	return st, nil
}
