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
	for _, load := range []func() error{
		loadKind(n.db.Sources, func(v model.Source) { s.Sources[v.Slug] = viewOf(v) }),
		loadKind(n.db.Destinations, func(d model.Destination) { s.Destinations[d.Slug] = d }),
		loadKind(n.db.Agents, func(a model.Agent) { s.Agents[a.ID] = a }),
		loadKind(n.db.Forwards, func(f model.Forward) { s.Forwards[f.Listen] = f }),
	} {
		if err := load(); err != nil {
			return fmt.Errorf("actors.loadConfig: %w", err)
		}
	}
	n.snapshot.Store(s)
	return nil
}

// loadKind reads one kind of stored object into the snapshot being built.
func loadKind[T any](list func() ([]T, error), add func(T)) func() error {
	return func() error {
		items, err := list()
		for _, v := range items {
			add(v)
		}
		return err
	}
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
	// Tokens are admin API tokens to create (their stored records: a
	// hash, never the token); one whose name exists is refused.
	// DeleteTokens revokes stored tokens. Neither writes an audit entry of
	// its own: give them in Audit.
	Tokens       []TokenRecord
	DeleteTokens []string
	// NewSigningSecrets, by destination slug: the signing secret a new
	// destination in Destinations without one gets (a cluster member's
	// proposal carries them, so every member stores the same secret);
	// an existing destination keeps its own. Without an entry a new
	// destination gets a generated one.
	NewSigningSecrets map[string]string
	// CreateOnly: every source, destination, agent and forward the change
	// writes must be new (ErrConflict otherwise); UpdateOnly: each must
	// exist (ErrNotFound otherwise). An API create or update says so, so
	// that on a cluster member the check holds when the change is applied,
	// not only when it was proposed (two members creating one slug at
	// once: one wins, the other hears 409).
	CreateOnly, UpdateOnly bool
	// Actor names who made the change, for the audit log.
	Actor string
	// KeepAgentSecrets keeps an existing agent's secret when the change
	// carries none (config files never carry one).
	KeepAgentSecrets bool
	// Audit are more entries about the change (a rotation's
	// secret.rotated), written in its batch so they are durable with it;
	// an empty Actor is the change's. A change that writes nothing writes
	// none of them.
	Audit []wal.AuditEntry
}

// Apply validates the change against the current configuration and writes
// it in one durable batch, with an audit entry per object changed; then
// destinations hear of their new settings. A failed Apply writes nothing.
//
// On a cluster member (UseConfigReplicator) the change is proposed to the
// metadata shard instead, and Apply returns once this member applied it
// (ApplyCommitted), like every other member does.
func (n *Node) Apply(c Change) error {
	if r := n.replicator.Load(); r != nil {
		return n.propose(*r, c)
	}
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	b := n.db.NewBatch()
	st, err := n.stage(c, b, nil)
	if err != nil || st == nil {
		b.Discard()
		return err
	}
	if err := n.db.CommitWait(b); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	n.publish(st)
	return nil
}

// staged is a change written into a batch, to publish once it is durable.
type staged struct {
	old, next    *Snapshot
	changedDests []string
	deleted      []string // destinations
	tokens       bool
}

// stage validates c against the current configuration and writes what it
// changes into b, with its audit entries; nil and no error: nothing
// changes. newSecret gives a new destination without a signing secret its
// secret; nil generates one. The caller holds cfgMu and discards b on an
// error.
func (n *Node) stage(c Change, b *wal.Batch, newSecret func(slug string) (string, error)) (*staged, error) {
	if newSecret == nil {
		newSecret = func(string) (string, error) { return delivery.GenerateSigningSecret() }
	}
	old := n.Snapshot()
	if err := c.checkExisting(old); err != nil {
		return nil, err
	}
	next := old.clone()
	var audits []audit

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
				return nil, fmt.Errorf("%w: %s %q", ErrNotFound, del.kind, id)
			}
			b.DeleteConfig(del.store, id)
			audits = append(audits, audit{"config.deleted", del.kind, id, nil})
		}
	}
	tokens, err := n.stageTokens(c, b)
	if err != nil {
		return nil, err
	}
	var changedDests []string
	for _, k := range []kindChange{
		upsert[model.Source]{
			field: "sources", kind: "source", items: c.Sources,
			key: func(s model.Source) string { return s.Slug },
			get: func(slug string) (model.Source, bool) {
				v, ok := next.Sources[slug]
				if !ok {
					return model.Source{}, false
				}
				return v.Source, true
			},
			put: func(b *wal.Batch, s model.Source) error {
				next.Sources[s.Slug] = viewOf(s)
				return b.PutSource(s)
			},
			diff: diffSource,
		},
		upsert[model.Destination]{
			field: "destinations", kind: "destination", items: c.Destinations,
			key: func(d model.Destination) string { return d.Slug },
			get: lookup(next.Destinations),
			fill: func(d *model.Destination, prev model.Destination, existed bool) error {
				return keepDestinationSecrets(d, prev, existed, newSecret)
			},
			put: func(b *wal.Batch, d model.Destination) error {
				next.Destinations[d.Slug] = d
				changedDests = append(changedDests, d.Slug)
				return b.PutDestination(d)
			},
			diff: diffDestination,
		},
		upsert[model.Agent]{
			field: "agents", kind: "agent", items: c.Agents,
			key: func(a model.Agent) string { return a.ID },
			get: lookup(next.Agents),
			fill: func(a *model.Agent, prev model.Agent, existed bool) error {
				if a.Secret == "" && c.KeepAgentSecrets && existed {
					a.Secret = prev.Secret
				}
				return nil
			},
			put: func(b *wal.Batch, a model.Agent) error {
				next.Agents[a.ID] = a
				return b.PutAgent(a)
			},
			diff: diffAgent,
		},
		upsert[model.Forward]{
			field: "forwards", kind: "forward", items: c.Forwards,
			key: func(f model.Forward) string { return f.Listen },
			get: lookup(next.Forwards),
			put: func(b *wal.Batch, f model.Forward) error {
				next.Forwards[f.Listen] = f
				return b.PutForward(f)
			},
			diff: func(_ *model.Forward, f model.Forward) map[string]string {
				return map[string]string{"agent": f.Agent, "target": f.Target}
			},
		},
	} {
		changed, err := k.stage(b)
		if err != nil {
			return nil, err
		}
		audits = append(audits, changed...)
	}
	if err := next.check(); err != nil {
		return nil, err
	}
	if err := next.checkTargets(c); err != nil {
		return nil, err
	}
	if len(audits) == 0 && !tokens {
		return nil, nil
	}
	for _, a := range audits {
		b.Audit(wal.AuditEntry{At: n.clock.Now().UTC(), Action: a.action, ObjectType: a.kind, ObjectID: a.id, Actor: c.Actor, Detail: a.detail})
	}
	for _, e := range c.Audit {
		if e.Actor == "" {
			e.Actor = c.Actor
		}
		b.Audit(e)
	}
	return &staged{old: old, next: next, changedDests: changedDests, deleted: c.DeleteDestinations, tokens: tokens}, nil
}

// publish makes a staged change, durable now, the node's configuration.
func (n *Node) publish(st *staged) {
	n.snapshot.Store(st.next)
	if st.tokens {
		n.tokenGen.Add(1)
	}
	if n.cfg.OnChange != nil {
		n.cfg.OnChange(st.old, st.next)
	}
	for _, slug := range append(st.changedDests, st.deleted...) {
		n.dests.notify(slug, configMsg{})
	}
	n.destinationsDeleted(st.deleted)
}

// audit is one object's change, for the audit log.
type audit struct {
	action, kind, id string
	detail           map[string]string
}

// kindChange is one kind of object's share of a Change.
type kindChange interface {
	// stage validates the kind's objects and writes those that change
	// into b (and the next snapshot), returning their audit entries.
	stage(b *wal.Batch) ([]audit, error)
}

// upsert is the creates and updates of one kind: T is a model type that
// validates itself.
type upsert[T interface{ Validate() error }] struct {
	field string // the Change's field, prefixed to validation errors
	kind  string // the audit log's object type
	items []T
	key   func(T) string
	get   func(key string) (T, bool) // the object in the next snapshot
	// fill, when set, completes an object from the one it replaces
	// (secrets a change does not carry).
	fill func(next *T, prev T, existed bool) error
	put  func(b *wal.Batch, v T) error // into b and the next snapshot
	diff func(prev *T, next T) map[string]string
}

func (u upsert[T]) stage(b *wal.Batch) ([]audit, error) {
	var out []audit
	for i, v := range u.items {
		if err := v.Validate(); err != nil {
			return nil, prefixField(fmt.Sprintf("%s[%d]", u.field, i), err)
		}
		prev, existed := u.get(u.key(v))
		if u.fill != nil {
			if err := u.fill(&v, prev, existed); err != nil {
				return nil, err
			}
		}
		if existed && reflect.DeepEqual(prev, v) {
			continue
		}
		if err := u.put(b, v); err != nil {
			return nil, err
		}
		var p *T
		if existed {
			p = &prev
		}
		out = append(out, audit{changeAction(existed), u.kind, u.key(v), u.diff(p, v)})
	}
	return out, nil
}

// lookup reads a snapshot map.
func lookup[V any](m map[string]V) func(string) (V, bool) {
	return func(k string) (V, bool) { v, ok := m[k]; return v, ok }
}

// keepDestinationSecrets keeps the signing secrets a change does not
// carry, and gives a new destination without one newSecret's.
func keepDestinationSecrets(d *model.Destination, prev model.Destination, existed bool, newSecret func(slug string) (string, error)) error {
	if d.SigningSecret == "" {
		if existed && prev.SigningSecret != "" {
			d.SigningSecret = prev.SigningSecret
		} else {
			sec, err := newSecret(d.Slug)
			if err != nil {
				return err
			}
			d.SigningSecret = sec
		}
	}
	if d.PreviousSigningSecret == "" && existed {
		d.PreviousSigningSecret, d.PreviousSecretExpiresAt = prev.PreviousSigningSecret, prev.PreviousSecretExpiresAt
	}
	return nil
}

// diffAgent names the allowed targets, and the secret (masked) when it
// changed.
func diffAgent(prev *model.Agent, a model.Agent) map[string]string {
	detail := map[string]string{"allowed_targets": fmt.Sprint(a.AllowedTargets)}
	var was string
	if prev != nil {
		was = prev.Secret
	}
	if a.Secret != was {
		detail["secret"] = mask(a.Secret)
	}
	return detail
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
	masked := func(d model.Destination) model.Destination {
		d = d.MaskCredentials()
		d.SigningSecret = mask(d.SigningSecret)
		d.PreviousSigningSecret = mask(d.PreviousSigningSecret)
		return d
	}
	if prev == nil {
		return diffJSON[model.Destination](nil, masked(next))
	}
	p := masked(*prev)
	detail := diffJSON(&p, masked(next))
	// A credential that changed behind its mask still shows that it did.
	if _, ok := detail["headers"]; !ok && !maps.Equal(prev.Headers, next.Headers) {
		detail["headers"] = "secret values changed"
	}
	if _, ok := detail["url"]; !ok && prev.URL != next.URL {
		detail["url"] = "query values changed"
	}
	return detail
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
