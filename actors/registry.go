package actors

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// registry resolves a destination slug to its actor, spawning it on
// demand. It counts what it routes to each actor so an idle actor can
// passivate without losing a message sent while it was deciding to stop:
// the actor may stop only if it has received everything routed to it, and
// that check and the removal happen under one lock.
type registry struct {
	n *Node

	mu      sync.Mutex // guards the fields below
	actors  map[string]*destEntry
	closing bool
	// owned is nil on a single node, which runs every destination. On a
	// cluster member it holds the partitions whose destinations may run.
	owned []bool
}

type destEntry struct {
	pid  *actor.PID
	sent uint64 // guarded by registry.mu
	// received is counted by the actor itself. It lives here, not in the
	// actor, so it survives a supervisor restart.
	received atomic.Uint64
	// incarnations counts the actor's starts: above one, it is restarting
	// after a failure.
	incarnations atomic.Uint64
	// line runs the destination's ordered attempts, one after another,
	// across the actor's restarts.
	line attemptLine
}

// routed is implemented by messages that go through the registry.
type routed interface{ isRouted() }

func newRegistry(n *Node) *registry {
	r := &registry{n: n, actors: map[string]*destEntry{}}
	if n.cfg.Member {
		r.owned = make([]bool, n.db.Partitions())
	}
	return r
}

// runs reports whether dest's actor may run here. Called with mu held.
func (r *registry) runs(dest string) bool {
	return r.owned == nil || r.owned[r.n.db.DestPartition(dest)]
}

// owns reports whether dest's actor may run here now.
func (r *registry) owns(dest string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closing && r.runs(dest)
}

// current reports whether e is dest's live actor entry.
func (r *registry) current(dest string, e *destEntry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closing && r.actors[dest] == e && r.runs(dest)
}

// own lets the destinations of part run, or stops them (a cluster
// member's ownership). Stopping does not wait: an attempt in flight
// finishes, and its outcome write is fenced.
func (r *registry) own(part uint16, yes bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owned == nil || int(part) >= len(r.owned) {
		return
	}
	r.owned[part] = yes
	if yes {
		return
	}
	for dest, e := range r.actors {
		if r.n.db.DestPartition(dest) == part {
			delete(r.actors, dest)
			r.n.system.Root.Stop(e.pid)
		}
	}
}

// send delivers msg to dest's actor, spawning it if needed. It never blocks
// on the actor. It reports false once the node is closing.
func (r *registry) send(dest string, msg routed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing || !r.runs(dest) {
		return false
	}
	e, ok := r.actors[dest]
	if !ok {
		e = &destEntry{}
		e.pid = r.n.spawnDestination(dest, e)
		r.actors[dest] = e
	}
	e.sent++
	r.n.system.Root.Send(e.pid, msg)
	return true
}

// notify sends msg to dest's actor only if it is running: one that is not
// reads the current configuration when it starts.
func (r *registry) notify(dest string, msg routed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.actors[dest]; ok && !r.closing && r.runs(dest) {
		e.sent++
		r.n.system.Root.Send(e.pid, msg)
	}
}

// passivate removes dest's actor if it has received all that was sent to it.
func (r *registry) passivate(dest string, pid *actor.PID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.actors[dest]
	if !ok || !e.pid.Equal(pid) || e.sent != e.received.Load() {
		return false
	}
	delete(r.actors, dest)
	return true
}

// live returns the number of destination actors in memory.
func (r *registry) live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.actors)
}

// stopAll stops every destination actor, letting each finish the message
// it is on, and waits for them.
func (r *registry) stopAll() {
	r.mu.Lock()
	r.closing = true
	pids := make([]*actor.PID, 0, len(r.actors))
	for _, e := range r.actors {
		pids = append(pids, e.pid)
	}
	r.actors = map[string]*destEntry{}
	r.mu.Unlock()
	futures := make([]actor.Future, 0, len(pids))
	for _, pid := range pids {
		futures = append(futures, r.n.system.Root.StopFuture(pid))
	}
	// Each future gives up on its own after protoactor's 10 s.
	for _, f := range futures {
		f.Wait()
	}
}
