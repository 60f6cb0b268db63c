// Package agentreg is the engine's side of the tunnel: it authenticates
// agents against the configured agents, audits their sessions, runs the
// raw TCP forwards and dials through an agent for delivery. It is an
// adapter between tunnelproto and the engine, not an actor.
//
// It is built before the node (the node's delivery client dials through
// it) and learns the configuration from the node's OnChange, so the
// composition root wires it in one pass: New, then actors.Start with
// Deliverer dialling Registry.Dial and OnChange calling SetConfig, then
// SetConfig with the node's loaded configuration and Start. No agent is
// served (and so none refused for want of configuration) before Start; one
// that dials earlier retries as after any failed attempt.
//
// A forward listens always on a single node; on a cluster member
// (Config.ListenWhileOnline) only while its agent has a session there, and
// one whose port is taken tries again every RetryListen.
//
// One live session per agent is the tunnel server's rule; the registry
// cuts a session whose agent was deleted or whose secret was rotated,
// before SetConfig returns, so a rotated secret stops working at once.
//
// It must never block the caller of SetConfig on a network peer, and
// never write anything but audit entries.
package agentreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookops/webhookops/actors/refusals"
	"github.com/webhookops/webhookops/tunnelproto"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// Config configures a registry.
type Config struct {
	// Tunnel is the tunnel server's config; Auth and OnEvent are set here.
	Tunnel tunnelproto.ServerConfig
	// DB receives the audit entries of sessions and failed forwards.
	DB *wal.DB
	// Logger; nil is slog.Default().
	Logger *slog.Logger
	// Refusals tallies failed authentications (anyone who reaches the
	// tunnel can fail as often as they like); share the node's. Nil: the
	// registry starts its own and closes it.
	Refusals *refusals.Tally
	// RetryListen is how often a forward that cannot listen (its address
	// taken, as by another cluster member on the same machine) tries
	// again; zero is 5 s.
	RetryListen time.Duration
	// ListenWhileOnline: a forward listens only while its agent has a
	// session here (a cluster member's: a client, or a load balancer's
	// health check, then finds the port open only on members that can
	// carry the connection). False: it listens whether or not the agent is
	// in session (a single node; connections are refused meanwhile).
	ListenWhileOnline bool
}

// noSession is why a forward waits when it listens only while its agent
// has a session here.
const noSession = "the agent has no session with this member"

// Registry is the tunnel server with the configured agents and forwards.
type Registry struct {
	srv      *tunnelproto.Server
	db       *wal.DB
	log      *slog.Logger
	refusals *refusals.Tally
	ownTally bool

	ctx        context.Context // cancelled by Close: forwards and Serve stop
	cancel     context.CancelFunc
	serve      chan error // Serve's result, once Start ran
	retry      time.Duration
	onlineOnly bool           // Config.ListenWhileOnline
	wake       chan struct{}  // an agent came or went: reconcile now
	loops      sync.WaitGroup // reconcileLoop

	closeOnce sync.Once

	changed atomic.Pointer[func()] // SetOnChange's

	mu       sync.Mutex // guards the fields below
	started  bool
	closed   bool
	agents   map[string]model.Agent
	forwards map[string]*runningForward
	failed   map[string]failedForward // forwards that cannot listen, by listen address
}

type failedForward struct {
	f       model.Forward
	err     string
	waiting bool // for its agent's session (onlineOnly), not failing
}

type runningForward struct {
	f      model.Forward
	cancel context.CancelFunc
	done   chan struct{}
}

// New binds the tunnel's listeners. Agents are served from Start on.
func New(cfg Config) (*Registry, error) {
	if cfg.DB == nil {
		return nil, errors.New("agentreg: Config.DB is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Registry{db: cfg.DB, log: cfg.Logger, serve: make(chan error, 1), refusals: cfg.Refusals,
		agents: map[string]model.Agent{}, forwards: map[string]*runningForward{}, failed: map[string]failedForward{},
		retry: cfg.RetryListen, onlineOnly: cfg.ListenWhileOnline, wake: make(chan struct{}, 1)}
	if r.retry <= 0 {
		r.retry = 5 * time.Second
	}
	cfg.Tunnel.Auth = tunnelproto.AuthenticatorFunc(r.lookup)
	cfg.Tunnel.OnEvent = r.onEvent
	if cfg.Tunnel.Logger == nil {
		cfg.Tunnel.Logger = cfg.Logger
	}
	srv, err := tunnelproto.NewServer(cfg.Tunnel)
	if err != nil {
		return nil, fmt.Errorf("agentreg.New: %w", err)
	}
	r.srv = srv
	if r.refusals == nil {
		r.refusals, r.ownTally = refusals.Start(cfg.DB, 0, cfg.Logger), true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Start serves agents. Call it once the configuration is known
// (SetConfig); a second call does nothing.
func (r *Registry) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	go func() { r.serve <- r.srv.Serve(r.ctx) }()
	r.loops.Go(r.reconcileLoop)
}

// Addr is the tunnel's address (UDP for QUIC, TCP on the same port).
func (r *Registry) Addr() net.Addr { return r.srv.Addr() }

// Fingerprint is the tunnel certificate's pin, "sha256:<hex>".
func (r *Registry) Fingerprint() string { return r.srv.Fingerprint() }

func (r *Registry) lookup(id string) ([]byte, []string, bool) {
	r.mu.Lock()
	ag, ok := r.agents[id]
	r.mu.Unlock()
	if !ok || ag.Secret == "" {
		return nil, nil, false
	}
	return []byte(ag.Secret), ag.AllowedTargets, true
}

// audit records e without waiting for it to be durable: it runs on the
// tunnel's goroutines, which must not block.
func (r *Registry) audit(e wal.AuditEntry) {
	b := r.db.NewBatch()
	b.Audit(e)
	r.db.Commit(b, nil)
}

// SetOnChange makes f hear of every change to what Listeners and the
// server's sessions report: a session up or down, a forward started,
// stopped or failing. f runs on the tunnel's goroutines and must not
// block (a cluster member's reporter only marks itself dirty).
func (r *Registry) SetOnChange(f func()) { r.changed.Store(&f) }

func (r *Registry) notify() {
	if f := r.changed.Load(); f != nil {
		(*f)()
	}
}

// SetMembers tells every agent, now and on each new session, the
// cluster's tunnels (a cluster member's; see tunnelproto.Server.SetMembers).
func (r *Registry) SetMembers(ms []tunnelproto.Member) error { return r.srv.SetMembers(ms) }

// Sessions lists the agents' live sessions on this node's tunnel.
func (r *Registry) Sessions() []tunnelproto.SessionInfo { return r.srv.Sessions() }

// Listeners reports this node's forwards by listen address: "" for one
// listening, else why it cannot.
func (r *Registry) Listeners() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.forwards)+len(r.failed))
	for listen := range r.forwards {
		out[listen] = ""
	}
	for listen, ff := range r.failed {
		out[listen] = ff.err
	}
	return out
}

// onEvent audits a session event.
func (r *Registry) onEvent(e tunnelproto.Event) {
	if e.Kind == tunnelproto.EventOnline || e.Kind == tunnelproto.EventOffline {
		defer r.notify()
		if r.onlineOnly {
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
	}
	detail := map[string]string{"remote_addr": e.RemoteAddr}
	if e.Code != tunnelproto.CodeNone {
		detail["code"] = e.Code.String()
	}
	if e.Reason != "" {
		detail["reason"] = e.Reason
	}
	id := e.AgentID
	if id == "" {
		id = "(unknown)"
	}
	if e.Kind == tunnelproto.EventRejected {
		// Tallied: one row per agent id and code per interval.
		r.refusals.Add(refusals.Rejection{At: e.Time, Action: "agent.rejected", ObjectType: "agent", ObjectID: id,
			Reason: e.Code.String(), Message: e.Reason, RemoteAddr: e.RemoteAddr})
		return
	}
	r.audit(wal.AuditEntry{At: e.Time.UTC(), Action: "agent." + string(e.Kind), ObjectType: "agent", ObjectID: id, Detail: detail})
}

// Dial opens a connection to addr through agentID, for HTTP delivery.
func (r *Registry) Dial(ctx context.Context, agentID, addr string) (net.Conn, error) {
	conn, err := r.srv.Dial(ctx, agentID, tunnelproto.KindHTTP, addr)
	if errors.Is(err, tunnelproto.ErrAgentOffline) {
		return nil, fmt.Errorf("agent %q is offline", agentID)
	}
	return conn, err
}

// DialTunnelOff is the delivery dialler of a node that runs no tunnel.
func DialTunnelOff(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("the tunnel is off: start the server with --tunnel-addr to deliver through agents")
}

// Online reports whether an agent has a live session, and when it was last seen.
func (r *Registry) Online(id string) (bool, time.Time) { return r.srv.Online(id) }

// SetConfig makes agents and forwards the registry's configuration: it
// cuts the sessions of agents deleted or whose secret changed, and starts,
// stops or restarts forwards to match. Calls come one at a time, in the
// order of the changes (the node's OnChange gives that).
func (r *Registry) SetConfig(agents map[string]model.Agent, forwards map[string]model.Forward) {
	r.mu.Lock()
	old := r.agents
	r.agents = agents
	r.mu.Unlock()
	for id, ag := range old {
		if nag, ok := agents[id]; !ok || nag.Secret != ag.Secret {
			if r.srv.Disconnect(id) {
				r.log.Info("agent session cut", "agent", id, "why", "deleted or secret rotated")
			}
		}
	}
	defer r.notify()
	online := r.online()
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.failed)
	for listen, rf := range r.forwards {
		if f, ok := forwards[listen]; !ok || f != rf.f {
			rf.cancel()
			<-rf.done
			delete(r.forwards, listen)
		}
	}
	for listen, f := range forwards {
		if _, ok := r.forwards[listen]; ok || r.closed {
			continue
		}
		if r.onlineOnly && !online[f.Agent] {
			r.failed[listen] = failedForward{f: f, err: noSession, waiting: true}
			continue
		}
		if err := r.startForward(f); err != nil {
			r.log.Error("forward cannot listen; retrying", "listen", f.Listen, "agent", f.Agent, "target", f.Target, "err", err, "every", r.retry)
			r.audit(wal.AuditEntry{At: time.Now().UTC(), Action: "forward.failed", ObjectType: "forward", ObjectID: listen, Detail: map[string]string{"error": err.Error()}})
		}
	}
}

// startForward listens for f and serves it, or records why it cannot.
// The caller holds mu.
func (r *Registry) startForward(f model.Forward) error {
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		r.failed[f.Listen] = failedForward{f: f, err: err.Error()}
		return err
	}
	delete(r.failed, f.Listen)
	ctx, cancel := context.WithCancel(r.ctx)
	rf := &runningForward{f: f, cancel: cancel, done: make(chan struct{})}
	r.forwards[f.Listen] = rf
	go func() {
		defer close(rf.done)
		if err := r.srv.Forward(ctx, ln, f.Agent, f.Target); err != nil && ctx.Err() == nil {
			r.log.Error("forward stopped", "listen", f.Listen, "err", err)
		}
	}()
	r.log.Info("forwarding", "listen", ln.Addr().String(), "agent", f.Agent, "target", f.Target)
	return nil
}

// reconcileLoop tries the forwards that cannot listen again, every retry,
// until Close: in a cluster on one machine, the member that held a
// forward's port may die and another take it over. With onlineOnly it
// also starts a forward whose agent came into session here and stops one
// whose agent left, at once (onEvent wakes it).
func (r *Registry) reconcileLoop() {
	t := time.NewTicker(r.retry)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
		if r.reconcile(r.online()) {
			r.notify()
		}
	}
}

// reconcile stops the forwards whose agent left (onlineOnly) and starts
// those that can listen now; it reports whether anything changed. It
// waits for stopped forwards' connections to end without holding mu (the
// tunnel's handshakes read the agents under it).
func (r *Registry) reconcile(online map[string]bool) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	changed := false
	var stopped []*runningForward
	if r.onlineOnly {
		for listen, rf := range r.forwards {
			if !online[rf.f.Agent] {
				rf.cancel()
				stopped = append(stopped, rf)
				delete(r.forwards, listen)
				r.failed[listen] = failedForward{f: rf.f, err: noSession, waiting: true}
				r.log.Info("forward stopped until its agent is in session here", "listen", listen, "agent", rf.f.Agent)
				changed = true
			}
		}
	}
	for listen, ff := range r.failed {
		if r.onlineOnly && !online[ff.f.Agent] {
			if !ff.waiting {
				r.failed[listen] = failedForward{f: ff.f, err: noSession, waiting: true}
				changed = true
			}
			continue
		}
		if r.startForward(ff.f) == nil || ff.waiting {
			changed = true // listening now, or failing where it waited
		}
	}
	r.mu.Unlock()
	for _, rf := range stopped {
		<-rf.done
	}
	return changed
}

// online is the set of agents in session here.
func (r *Registry) online() map[string]bool {
	out := map[string]bool{}
	for _, s := range r.srv.Sessions() {
		out[s.AgentID] = true
	}
	return out
}

// Close stops the forwards and the tunnel, telling agents to go away.
// Idempotent.
func (r *Registry) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		for listen, rf := range r.forwards {
			rf.cancel()
			<-rf.done
			delete(r.forwards, listen)
		}
		started := r.started
		r.mu.Unlock()
		r.cancel()
		r.loops.Wait()
		r.srv.Close()
		if started {
			<-r.serve
		}
		if r.ownTally {
			r.refusals.Close()
		}
	})
}
