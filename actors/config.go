package actors

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
)

// Snapshot returns the current configuration. Do not modify it.
func (n *Node) Snapshot() *Snapshot { return n.snapshot.Load() }

// Source returns an enabled source for the ingest path.
func (n *Node) Source(slug string) (*SourceView, bool) {
	s, ok := n.Snapshot().Sources[slug]
	if !ok || s.Disabled {
		return nil, false
	}
	return s, true
}

func (n *Node) loadConfig() error {
	s := newSnapshot()
	srcs, err := n.db.Sources()
	if err != nil {
		return fmt.Errorf("actors.loadConfig: %w", err)
	}
	for _, src := range srcs {
		s.Sources[src.Slug] = viewOf(src)
	}
	dests, err := n.db.Destinations()
	if err != nil {
		return fmt.Errorf("actors.loadConfig: %w", err)
	}
	for _, d := range dests {
		s.Destinations[d.Slug] = d
	}
	agents, err := n.db.Agents()
	if err != nil {
		return fmt.Errorf("actors.loadConfig: %w", err)
	}
	for _, a := range agents {
		s.Agents[a.ID] = a
	}
	fwds, err := n.db.Forwards()
	if err != nil {
		return fmt.Errorf("actors.loadConfig: %w", err)
	}
	for _, f := range fwds {
		s.Forwards[f.Listen] = f
	}
	n.snapshot.Store(s)
	return nil
}

// Change is a set of configuration writes applied all together or not at
// all. A nil entry in a Delete list is ignored.
type Change struct {
	Sources            []model.Source
	Destinations       []model.Destination
	Agents             []model.Agent
	Forwards           []model.Forward
	DeleteSources      []string
	DeleteDestinations []string
	DeleteAgents       []string
	DeleteForwards     []string
	// Actor names who made the change, for the audit log.
	Actor string
	// KeepAgentSecrets keeps an existing agent's secret when the change
	// carries none (config files never carry one).
	KeepAgentSecrets bool
}

// Apply validates the change against the current configuration and writes
// it in one durable batch, with an audit entry per object changed; then
// destinations hear of their new settings. A failed Apply writes nothing.
func (n *Node) Apply(c Change) error {
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	old := n.Snapshot()
	next := old.clone()
	b := n.db.NewBatch()
	type audit struct {
		action, kind, id string
		detail           map[string]string
	}
	var audits []audit
	fail := func(err error) error { b.Discard(); return err }

	for _, del := range []struct {
		kind  string
		store byte
		ids   []string
		m     func(string) bool
	}{
		{"source", wal.KindSource, c.DeleteSources, deleter(next.Sources)},
		{"destination", wal.KindDestination, c.DeleteDestinations, deleter(next.Destinations)},
		{"agent", wal.KindAgent, c.DeleteAgents, deleter(next.Agents)},
		{"forward", wal.KindForward, c.DeleteForwards, deleter(next.Forwards)},
	} {
		for _, id := range del.ids {
			if !del.m(id) {
				return fail(fmt.Errorf("%w: %s %q", ErrNotFound, del.kind, id))
			}
			b.DeleteConfig(del.store, id)
			audits = append(audits, audit{"config.deleted", del.kind, id, nil})
		}
	}
	for i, src := range c.Sources {
		if err := src.Validate(); err != nil {
			return fail(prefixField(fmt.Sprintf("sources[%d]", i), err))
		}
		prev, existed := next.Sources[src.Slug]
		if existed && reflect.DeepEqual(prev.Source, src) {
			continue
		}
		next.Sources[src.Slug] = viewOf(src)
		if err := b.PutSource(src); err != nil {
			return fail(err)
		}
		var prevSrc *model.Source
		if existed {
			prevSrc = &prev.Source
		}
		audits = append(audits, audit{changeAction(existed), "source", src.Slug, diffSource(prevSrc, src)})
	}
	var changedDests []string
	for i, d := range c.Destinations {
		if err := d.Validate(); err != nil {
			return fail(prefixField(fmt.Sprintf("destinations[%d]", i), err))
		}
		prev, existed := next.Destinations[d.Slug]
		if d.SigningSecret == "" {
			if existed && prev.SigningSecret != "" {
				d.SigningSecret = prev.SigningSecret
			} else {
				sec, err := delivery.GenerateSigningSecret()
				if err != nil {
					return fail(err)
				}
				d.SigningSecret = sec
			}
		}
		if d.PreviousSigningSecret == "" && existed {
			d.PreviousSigningSecret, d.PreviousSecretExpiresAt = prev.PreviousSigningSecret, prev.PreviousSecretExpiresAt
		}
		if existed && reflect.DeepEqual(prev, d) {
			continue
		}
		next.Destinations[d.Slug] = d
		if err := b.PutDestination(d); err != nil {
			return fail(err)
		}
		changedDests = append(changedDests, d.Slug)
		var p *model.Destination
		if existed {
			p = &prev
		}
		audits = append(audits, audit{changeAction(existed), "destination", d.Slug, diffDestination(p, d)})
	}
	for i, a := range c.Agents {
		if err := a.Validate(); err != nil {
			return fail(prefixField(fmt.Sprintf("agents[%d]", i), err))
		}
		prev, existed := next.Agents[a.ID]
		if a.Secret == "" && c.KeepAgentSecrets && existed {
			a.Secret = prev.Secret
		}
		if existed && reflect.DeepEqual(prev, a) {
			continue
		}
		next.Agents[a.ID] = a
		if err := b.PutAgent(a); err != nil {
			return fail(err)
		}
		detail := map[string]string{"allowed_targets": fmt.Sprint(a.AllowedTargets)}
		if a.Secret != prev.Secret {
			detail["secret"] = mask(a.Secret)
		}
		audits = append(audits, audit{changeAction(existed), "agent", a.ID, detail})
	}
	for i, f := range c.Forwards {
		if err := f.Validate(); err != nil {
			return fail(prefixField(fmt.Sprintf("forwards[%d]", i), err))
		}
		if prev, ok := next.Forwards[f.Listen]; ok && prev == f {
			continue
		}
		_, existed := next.Forwards[f.Listen]
		next.Forwards[f.Listen] = f
		if err := b.PutForward(f); err != nil {
			return fail(err)
		}
		audits = append(audits, audit{changeAction(existed), "forward", f.Listen, map[string]string{"agent": f.Agent, "target": f.Target}})
	}
	if err := next.check(); err != nil {
		return fail(err)
	}
	if len(audits) == 0 {
		b.Discard()
		return nil
	}
	for _, a := range audits {
		b.Audit(wal.AuditEntry{At: n.clock.Now().UTC(), Action: a.action, ObjectType: a.kind, ObjectID: a.id, Actor: c.Actor, Detail: a.detail})
	}
	if err := n.db.CommitWait(b); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	n.snapshot.Store(next)
	if n.cfg.OnChange != nil {
		n.cfg.OnChange(old, next)
	}
	for _, slug := range append(changedDests, c.DeleteDestinations...) {
		n.dests.notify(slug, configMsg{})
	}
	n.destinationsDeleted(c.DeleteDestinations)
	return nil
}

func changeAction(existed bool) string {
	if existed {
		return "config.updated"
	}
	return "config.created"
}

func prefixField(prefix string, err error) error {
	if fe, ok := err.(*model.FieldError); ok {
		return &model.FieldError{Field: prefix + "." + fe.Field, Message: fe.Message}
	}
	return err
}

// diffSource names what changed, secrets masked.
func diffSource(prev *model.Source, next model.Source) map[string]string {
	masked := func(s model.Source) model.Source {
		s.Secrets = slices.Clone(s.Secrets)
		for i := range s.Secrets {
			s.Secrets[i] = mask(s.Secrets[i])
		}
		return s
	}
	var p *model.Source
	if prev != nil {
		m := masked(*prev)
		p = &m
	}
	return diffJSON(p, masked(next))
}

func diffDestination(prev *model.Destination, next model.Destination) map[string]string {
	next.SigningSecret = mask(next.SigningSecret)
	next.PreviousSigningSecret = mask(next.PreviousSigningSecret)
	if prev != nil {
		p := *prev
		p.SigningSecret = mask(p.SigningSecret)
		p.PreviousSigningSecret = mask(p.PreviousSigningSecret)
		return diffJSON(&p, next)
	}
	return diffJSON[model.Destination](nil, next)
}

// diffJSON lists the top-level JSON fields that differ, as "old -> new".
func diffJSON[T any](prev *T, next T) map[string]string {
	toMap := func(v any) map[string]json.RawMessage {
		raw, _ := json.Marshal(v)
		m := map[string]json.RawMessage{}
		json.Unmarshal(raw, &m)
		return m
	}
	nm := toMap(next)
	pm := map[string]json.RawMessage{}
	if prev != nil {
		pm = toMap(*prev)
	}
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(nm)) {
		if string(pm[k]) != string(nm[k]) {
			if prev == nil {
				out[k] = string(nm[k])
			} else {
				out[k] = string(pm[k]) + " -> " + string(nm[k])
			}
		}
	}
	for k := range pm {
		if _, ok := nm[k]; !ok {
			out[k] = string(pm[k]) + " -> (unset)"
		}
	}
	return out
}

// deleter returns a function that deletes a key from m, reporting whether
// it was there.
func deleter[V any](m map[string]V) func(string) bool {
	return func(k string) bool {
		_, ok := m[k]
		delete(m, k)
		return ok
	}
}
