package cluster

// The tunnel directory: a small raft shard (TunnelShard) of its own, in
// memory, that tells every member what the other members' tunnels are and
// hold. An agent keeps a session to every member it can reach, and a
// destination is delivered by whichever member leads its partition,
// through that member's own session; so enrollment must print every
// member's tunnel, and an operator asking any member wants to see which
// members have the agent in session and which listen for a forward.
//
// Each member proposes its whole tunnel state as one entry (TunnelReport:
// its endpoint, the agents in session, the forwards it listens for or
// failed to), on start and whenever it changes; applying replaces that
// member's record. The state is volatile (sessions come and go) and small,
// so the state machine keeps it in memory and snapshots it whole; a
// member restarted reports afresh. A member killed leaves its last report
// behind: readers show each report's time, and the cluster status says
// whether the member is reachable.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// TunnelShard is the raft shard id of the tunnel directory.
const TunnelShard = 2

// TunnelReport is one member's tunnel state.
type TunnelReport struct {
	Node uint64 `json:"node"`
	// Addr and Fingerprint are where agents dial this member's tunnel and
	// the pin of its certificate.
	Addr        string `json:"addr"`
	Fingerprint string `json:"fingerprint"`
	// Sessions are the agents with a live session here, by id.
	Sessions map[string]TunnelSession `json:"sessions,omitempty"`
	// Listeners are the forwards this member runs, by listen address: ""
	// when it listens, else why it cannot.
	Listeners map[string]string `json:"listeners,omitempty"`
	// At is when the member made the report, on its clock (shown to
	// operators; never compared).
	At time.Time `json:"at"`
	// Run identifies the member's process (its reporter's start) and Seq
	// counts its reports: a report of the same run with a lower Seq (a
	// proposal retried that committed after a later one) is stale.
	Run int64  `json:"run"`
	Seq uint64 `json:"seq"`
}

// TunnelSession is one agent's session on a member.
type TunnelSession struct {
	Remote    string    `json:"remote"`
	Transport string    `json:"transport"`
	Since     time.Time `json:"since"`
}

// Validate checks what a report must carry; applying refuses one without.
func (r TunnelReport) Validate() error {
	if r.Node == 0 {
		return errors.New("cluster: tunnel report without a node id")
	}
	if r.Addr == "" || r.Fingerprint == "" {
		return fmt.Errorf("cluster: tunnel report of node %d without its address or fingerprint", r.Node)
	}
	return nil
}

// TunnelDirectory is every member's last report, by node id.
type TunnelDirectory map[uint64]TunnelReport

// Apply returns the directory with r in place of the member's previous
// report; a report of the same run older than the one held (a retried
// proposal that committed late) changes nothing. A new run (the member
// restarted) always replaces the old one's report, whatever the clocks
// say.
func (d TunnelDirectory) Apply(r TunnelReport) TunnelDirectory {
	if old, ok := d[r.Node]; ok && r.Run == old.Run && r.Seq < old.Seq {
		return d
	}
	next := maps.Clone(d)
	if next == nil {
		next = TunnelDirectory{}
	}
	next[r.Node] = r
	return next
}

// Nodes lists the members reported, by id.
func (d TunnelDirectory) Nodes() []uint64 { return slices.Sorted(maps.Keys(d)) }

// Of keeps the reports of members: a member removed from the cluster
// leaves its last report in the state machine, and its tunnel must not be
// named any more.
func (d TunnelDirectory) Of(members map[uint64]string) TunnelDirectory {
	out := TunnelDirectory{}
	for id, r := range d {
		if _, ok := members[id]; ok {
			out[id] = r
		}
	}
	return out
}

// tunnelSM is the directory's state machine: the directory, replaced
// whole on each apply, so Lookup reads a consistent copy without a lock
// held across the caller.
type tunnelSM struct {
	mu  sync.Mutex
	dir TunnelDirectory
}

func (s *tunnelSM) Update(e sm.Entry) (sm.Result, error) {
	var r TunnelReport
	if err := json.Unmarshal(e.Cmd, &r); err != nil || r.Validate() != nil {
		// Refused as a result, never an error: an error from Update is
		// fatal to the replica.
		return sm.Result{Value: 0}, nil
	}
	s.mu.Lock()
	s.dir = s.dir.Apply(r)
	s.mu.Unlock()
	return sm.Result{Value: 1}, nil
}

func (s *tunnelSM) Lookup(any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dir, nil
}

func (s *tunnelSM) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	s.mu.Lock()
	dir := s.dir
	s.mu.Unlock()
	return json.NewEncoder(w).Encode(dir)
}

func (s *tunnelSM) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	var dir TunnelDirectory
	if err := json.NewDecoder(r).Decode(&dir); err != nil {
		return fmt.Errorf("cluster: tunnel directory snapshot: %w", err)
	}
	s.mu.Lock()
	s.dir = dir
	s.mu.Unlock()
	return nil
}

func (s *tunnelSM) Close() error { return nil }

// TunnelSource is this member's tunnel, as the reporter reads it.
type TunnelSource interface {
	// TunnelState reports the tunnel's endpoint, sessions and listeners
	// now (Node and At are filled in by the reporter).
	TunnelState() TunnelReport
}

// tunnelReporter proposes this member's tunnel state when it changes.
type tunnelReporter struct {
	src   TunnelSource
	dirty chan struct{} // a change since the last report
	run   int64         // this process's reports, for TunnelReport.Run
	seq   uint64        // the last report's Seq
}

// ReportTunnel starts reporting src's state to the directory: once now,
// then after each TunnelChanged, and again every interval (so a report
// lost with a quorum is made again). Call it once, after Start.
func (c *Cluster) ReportTunnel(src TunnelSource, every time.Duration) {
	r := &tunnelReporter{src: src, dirty: make(chan struct{}, 1), run: time.Now().UnixNano()}
	c.mu.Lock()
	c.reporter = r
	c.mu.Unlock()
	r.dirty <- struct{}{}
	c.wg.Go(func() { c.reportLoop(r, every) })
}

// TunnelChanged tells the reporter that the tunnel's state changed (a
// session came or went, a forward started or stopped). It never blocks.
func (c *Cluster) TunnelChanged() {
	c.mu.Lock()
	r := c.reporter
	c.mu.Unlock()
	if r == nil {
		return
	}
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

func (c *Cluster) reportLoop(r *tunnelReporter, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-r.dirty:
		case <-t.C:
		}
		// Changes come in bursts (an agent joining every member, a config
		// with several forwards): one report for the burst.
		select {
		case <-c.closed:
			return
		case <-time.After(20 * time.Millisecond):
		}
		select {
		case <-r.dirty:
		default:
		}
		rep := r.src.TunnelState()
		r.seq++
		rep.Node, rep.At, rep.Run, rep.Seq = c.cfg.NodeID, c.cfg.Now().UTC(), r.run, r.seq
		cmd, err := json.Marshal(rep)
		if err == nil {
			_, err = c.proposeTo(context.Background(), TunnelShard, "the tunnel directory", cmd)
		}
		if err != nil {
			c.log.Warn("tunnel report not committed; retrying", "err", err)
			select {
			case r.dirty <- struct{}{}:
			default:
			}
			select {
			case <-c.closed:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// Tunnels reads the tunnel directory from this member's replica (it may
// lag the others by what raft has not applied here yet), with the reports
// of the shard's current members only.
func (c *Cluster) Tunnels() (TunnelDirectory, error) {
	v, err := c.nh.StaleRead(TunnelShard, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster: tunnel directory: %w", err)
	}
	dir, _ := v.(TunnelDirectory)
	info := c.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	for _, si := range info.ShardInfoList {
		if si.ShardID == TunnelShard && !si.Pending && len(si.Replicas) > 0 {
			return dir.Of(si.Replicas), nil
		}
	}
	return dir, nil
}

// WatchTunnels calls f with the directory (Tunnels) every interval until
// Close, and at once; a read that fails is skipped. f runs on one
// goroutine, one call at a time.
func (c *Cluster) WatchTunnels(every time.Duration, f func(TunnelDirectory)) {
	c.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if dir, err := c.Tunnels(); err == nil {
				f(dir)
			}
			select {
			case <-c.closed:
				return
			case <-t.C:
			}
		}
	})
}

// startTunnelShard starts this member's replica of the directory.
func (c *Cluster) startTunnelShard(members map[uint64]dragonboat.Target) error {
	rc := c.replicaConfig(TunnelShard, 1000, 100)
	factory := func(uint64, uint64) sm.IStateMachine { return &tunnelSM{} }
	if err := c.nh.StartReplica(members, c.cfg.Join, factory, rc); err != nil {
		return fmt.Errorf("cluster: tunnel directory: %w", err)
	}
	return nil
}
