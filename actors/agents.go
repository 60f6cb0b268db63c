package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/tunnelproto"
	"github.com/webhookops/webhookops/wal"
)

// Agents is the server side of the tunnel: it authenticates agents against
// the configuration, audits their sessions, runs the raw TCP forwards, and
// dials through an agent for delivery. One live session per agent is the
// tunnel server's rule; Agents cuts a session whose agent was deleted or
// whose secret was rotated.
type Agents struct {
	n   *Node
	srv *tunnelproto.Server

	ctx    context.Context
	cancel context.CancelFunc
	serve  chan error

	closeOnce sync.Once

	mu       sync.Mutex // guards forwards
	forwards map[string]*runningForward
}

type runningForward struct {
	f      model.Forward
	cancel context.CancelFunc
	done   chan struct{}
}

// StartAgents starts the tunnel listener described by cfg (Auth and OnEvent
// are filled in here) and the configured forwards.
func (n *Node) StartAgents(cfg tunnelproto.ServerConfig) (*Agents, error) {
	a := &Agents{n: n, forwards: map[string]*runningForward{}, serve: make(chan error, 1)}
	cfg.Auth = tunnelproto.AuthenticatorFunc(a.lookup)
	cfg.OnEvent = a.onEvent
	if cfg.Logger == nil {
		cfg.Logger = n.log
	}
	srv, err := tunnelproto.NewServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("actors.StartAgents: %w", err)
	}
	a.srv = srv
	a.ctx, a.cancel = context.WithCancel(context.Background())
	go func() { a.serve <- srv.Serve(a.ctx) }()
	a.ConfigChanged(newSnapshot(), n.Snapshot())
	return a, nil
}

// Addr is the tunnel's UDP address.
func (a *Agents) Addr() net.Addr { return a.srv.Addr() }

// Fingerprint is the tunnel certificate's pin, "sha256:<hex>".
func (a *Agents) Fingerprint() string { return a.srv.Fingerprint() }

func (a *Agents) lookup(id string) ([]byte, []string, bool) {
	ag, ok := a.n.Snapshot().Agents[id]
	if !ok || ag.Secret == "" {
		return nil, nil, false
	}
	return []byte(ag.Secret), ag.AllowedTargets, true
}

// onEvent audits a session event. It runs on the tunnel's goroutines and
// must not block: the audit write is not waited for.
func (a *Agents) onEvent(e tunnelproto.Event) {
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
	a.n.Audit(wal.AuditEntry{At: e.Time.UTC(), Action: "agent." + string(e.Kind), ObjectType: "agent", ObjectID: id, Detail: detail})
}

// Dial opens a connection to addr through agentID, for HTTP delivery.
func (a *Agents) Dial(ctx context.Context, agentID, addr string) (net.Conn, error) {
	conn, err := a.srv.Dial(ctx, agentID, tunnelproto.KindHTTP, addr)
	if errors.Is(err, tunnelproto.ErrAgentOffline) {
		return nil, fmt.Errorf("agent %q is offline", agentID)
	}
	return conn, err
}

// Online reports whether an agent has a live session, and when it was last seen.
func (a *Agents) Online(id string) (bool, time.Time) { return a.srv.Online(id) }

// ConfigChanged cuts sessions of deleted agents and agents whose secret
// changed, and starts, stops or restarts forwards to match next. Pass it
// as Config.OnChange (through a closure, since Agents starts after the node).
func (a *Agents) ConfigChanged(old, next *Snapshot) {
	for id, ag := range old.Agents {
		if nag, ok := next.Agents[id]; !ok || nag.Secret != ag.Secret {
			if a.srv.Disconnect(id) {
				a.n.log.Info("agent session cut", "agent", id, "why", "deleted or secret rotated")
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for listen, rf := range a.forwards {
		if f, ok := next.Forwards[listen]; !ok || f != rf.f {
			rf.cancel()
			<-rf.done
			delete(a.forwards, listen)
		}
	}
	for listen, f := range next.Forwards {
		if _, ok := a.forwards[listen]; ok {
			continue
		}
		ln, err := net.Listen("tcp", f.Listen)
		if err != nil {
			a.n.log.Error("forward cannot listen", "listen", f.Listen, "agent", f.Agent, "target", f.Target, "err", err)
			a.n.Audit(wal.AuditEntry{Action: "forward.failed", ObjectType: "forward", ObjectID: listen, Detail: map[string]string{"error": err.Error()}})
			continue
		}
		ctx, cancel := context.WithCancel(a.ctx)
		rf := &runningForward{f: f, cancel: cancel, done: make(chan struct{})}
		a.forwards[listen] = rf
		go func() {
			defer close(rf.done)
			if err := a.srv.Forward(ctx, ln, f.Agent, f.Target); err != nil && ctx.Err() == nil {
				a.n.log.Error("forward stopped", "listen", f.Listen, "err", err)
			}
		}()
		a.n.log.Info("forwarding", "listen", ln.Addr().String(), "agent", f.Agent, "target", f.Target)
	}
}

// Close stops the forwards and the tunnel, telling agents to go away.
// Idempotent.
func (a *Agents) Close() {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		for listen, rf := range a.forwards {
			rf.cancel()
			<-rf.done
			delete(a.forwards, listen)
		}
		a.mu.Unlock()
		a.cancel()
		a.srv.Close()
		<-a.serve
	})
}
