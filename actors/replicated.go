package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// Replicated configuration (a cluster member's).
//
// On a cluster member every configuration change goes through the
// metadata shard: Apply prepares the change against this member's
// configuration (validating it, so a bad one is refused with the usual
// error before anything is proposed, and choosing the secrets the change
// generates, so every member stores the same ones) and proposes it; every
// member's state machine hands the committed change to ApplyCommitted,
// which validates it again against that member's configuration (the same
// on every member: it is written only by the shard, in log order) and
// writes it with the shard's applied index. A change refused at that point
// (two members raced) is refused the same way everywhere.

// ConfigReplicator proposes configuration changes to a cluster's metadata
// shard.
type ConfigReplicator interface {
	// ProposeChange commits c and returns once this member applied it
	// (ApplyCommitted), with the error that refused it, if any.
	ProposeChange(ctx context.Context, c Change) error
	// CatchUp returns once this member applied every change committed
	// before it was called.
	CatchUp(ctx context.Context) error
}

// TokenRecord is an admin token as stored: its JSON record (a hash, never
// the token itself).
type TokenRecord struct {
	Name   string          `json:"name"`
	Record json.RawMessage `json:"record"`
}

// proposeTimeout bounds one proposed change (an election included).
const proposeTimeout = 10 * time.Second

// UseConfigReplicator makes every later Apply go through r.
func (n *Node) UseConfigReplicator(r ConfigReplicator) { n.replicator.Store(&r) }

// Replicated reports whether configuration changes go through a cluster's
// metadata shard.
func (n *Node) Replicated() bool { return n.replicator.Load() != nil }

// TokenGeneration changes whenever the stored admin tokens change (a
// change applied here or on another member): the admin API reloads them
// when it moved.
func (n *Node) TokenGeneration() uint64 { return n.tokenGen.Load() }

// CatchUpConfig returns once this member's configuration holds every
// change the cluster committed before the call; at once on a single node.
func (n *Node) CatchUpConfig(ctx context.Context) error {
	if r := n.replicator.Load(); r != nil {
		return (*r).CatchUp(ctx)
	}
	return nil
}

// WouldChange reports whether applying c would change the configuration
// here (a cluster member's view, which may lag), and refuses what Apply
// would refuse, writing nothing.
func (n *Node) WouldChange(c Change) (bool, error) {
	_, changes, err := n.prepare(c)
	return changes, err
}

func (n *Node) propose(r ConfigReplicator, c Change) error {
	c, changes, err := n.prepare(c)
	if err != nil || !changes {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, proposeTimeout)
	defer cancel()
	return r.ProposeChange(ctx, c)
}

// prepare validates c against this member's configuration and picks the
// signing secret of each destination that carries none (used only if it is
// new when the change is applied). changes: c changes something here.
func (n *Node) prepare(c Change) (Change, bool, error) {
	secrets := maps.Clone(c.NewSigningSecrets) // the caller's map stays as it was
	for _, d := range c.Destinations {
		if d.SigningSecret != "" || secrets[d.Slug] != "" {
			continue
		}
		sec, err := delivery.GenerateSigningSecret()
		if err != nil {
			return c, false, err
		}
		if secrets == nil {
			secrets = map[string]string{}
		}
		secrets[d.Slug] = sec
	}
	c.NewSigningSecrets = secrets
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	b := n.db.NewBatch()
	defer b.Discard()
	st, err := n.stage(c, b, committedSecret(c))
	return c, st != nil, err
}

// committedSecret gives a new destination the secret its change carries,
// and refuses one that carries none: a generated secret would differ on
// every member.
func committedSecret(c Change) func(slug string) (string, error) {
	return func(slug string) (string, error) {
		if sec := c.NewSigningSecrets[slug]; sec != "" {
			return sec, nil
		}
		return "", &model.FieldError{Field: "destinations[" + slug + "].signing_secret", Message: "a replicated change must carry a new destination's signing secret"}
	}
}

// ApplyCommitted applies a change committed to the metadata shard: it
// validates c against this member's configuration, writes it into b and
// calls commit (which records the shard's applied index in b and commits
// it); then the node, OnChange and the destinations hear of it. It
// returns the error that refuses c, having called nothing, or commit's
// error. b is the caller's to discard when commit was not called.
func (n *Node) ApplyCommitted(c Change, b *wal.Batch, commit func() error) error {
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	st, err := n.stage(c, b, committedSecret(c))
	if err != nil {
		return err
	}
	if err := commit(); err != nil || st == nil {
		return err
	}
	n.publish(st)
	return nil
}

// ReloadConfig reads the configuration again from the store (a snapshot
// of the metadata shard replaced it) and tells whoever a change concerns.
func (n *Node) ReloadConfig() error {
	n.cfgMu.Lock()
	defer n.cfgMu.Unlock()
	old := n.Snapshot()
	if err := n.loadConfig(); err != nil {
		return err
	}
	next := n.Snapshot()
	st := &staged{old: old, next: next, tokens: true}
	for _, slug := range slices.Sorted(maps.Keys(next.Destinations)) {
		if prev, ok := old.Destinations[slug]; !ok || !reflect.DeepEqual(prev, next.Destinations[slug]) {
			st.changedDests = append(st.changedDests, slug)
		}
	}
	for _, slug := range slices.Sorted(maps.Keys(old.Destinations)) {
		if _, ok := next.Destinations[slug]; !ok {
			st.deleted = append(st.deleted, slug)
		}
	}
	n.publish(st)
	return nil
}

// stageTokens writes c's token creations and revocations into b; changed:
// it wrote any.
func (n *Node) stageTokens(c Change, b *wal.Batch) (changed bool, err error) {
	exists := func(name string) (bool, error) {
		_, err := n.db.GetConfig(wal.KindToken, name)
		if errors.Is(err, wal.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	for _, name := range c.DeleteTokens {
		ok, err := exists(name)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("%w: no token named %q", ErrNotFound, name)
		}
		b.DeleteConfig(wal.KindToken, name)
	}
	for _, t := range c.Tokens {
		if !model.ValidSlug(t.Name) {
			return false, &model.FieldError{Field: "name", Message: fmt.Sprintf("%q is not a valid token name", t.Name)}
		}
		ok, err := exists(t.Name)
		if err != nil {
			return false, err
		}
		if ok {
			return false, fmt.Errorf("%w: a token named %q already exists", ErrConflict, t.Name)
		}
		if err := b.PutTokenRecord(t.Name, t.Record); err != nil {
			return false, &model.FieldError{Field: "record", Message: err.Error()}
		}
	}
	return len(c.Tokens)+len(c.DeleteTokens) > 0, nil
}

// checkExisting refuses what CreateOnly and UpdateOnly rule out, against
// the configuration snap.
func (c Change) checkExisting(snap *Snapshot) error {
	if !c.CreateOnly && !c.UpdateOnly {
		return nil
	}
	type named struct {
		kind, key string
		exists    bool
	}
	var objs []named
	for _, s := range c.Sources {
		_, ok := snap.Sources[s.Slug]
		objs = append(objs, named{"source", s.Slug, ok})
	}
	for _, d := range c.Destinations {
		_, ok := snap.Destinations[d.Slug]
		objs = append(objs, named{"destination", d.Slug, ok})
	}
	for _, a := range c.Agents {
		_, ok := snap.Agents[a.ID]
		objs = append(objs, named{"agent", a.ID, ok})
	}
	for _, f := range c.Forwards {
		_, ok := snap.Forwards[f.Listen]
		objs = append(objs, named{"forward", f.Listen, ok})
	}
	for _, o := range objs {
		switch {
		case c.CreateOnly && o.exists:
			return fmt.Errorf("%w: a %s %q already exists", ErrConflict, o.kind, o.key)
		case c.UpdateOnly && !o.exists:
			return fmt.Errorf("%w: no %s %q", ErrNotFound, o.kind, o.key)
		}
	}
	return nil
}
