package wal

// The replicated configuration (a cluster's metadata shard).
//
// In a cluster, config objects (sources, destinations, agents, forwards)
// and admin tokens are written by the metadata shard's state machine, on
// every member, under the keys a single node uses for them (c <kind>
// <slug>), so every read of them works unchanged. What that state machine
// needs from the store is here:
//
//   - MetaBatch: one committed entry's writes with the shard's applied raft
//     index in the same Pebble batch, committed without an fsync of its own
//     (the raft log is the durability; see replica.go).
//   - ReadConfigSet and RestoreConfigSet: the replicated kinds as objects,
//     secrets opened, for a snapshot that another member (with its own
//     secret.key) restores, sealing them again with its own key.
//
// Node-local kinds under prefixConfig (replay records, dashboard rollups)
// are not part of it.
//
// Keys added here:
//
//	m R a    the metadata shard's applied raft index (8 bytes)
//	m R k    the id of the cluster sealing key its entries are sealed with

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/webhookops/webhookops/wal/model"
)

var (
	metaApplied = []byte{prefixMeta, 'R', 'a'}
	metaKeyID   = []byte{prefixMeta, 'R', 'k'}
)

// ReplicatedKinds are the config kinds a cluster's metadata shard holds.
var ReplicatedKinds = []byte{KindSource, KindDestination, KindAgent, KindForward, KindToken, KindMember, KindProposal}

// MetaBatch is one committed metadata entry's writes.
type MetaBatch struct{ *Batch }

// NewMetaBatch starts the writes of one metadata entry.
func (db *DB) NewMetaBatch() *MetaBatch { return &MetaBatch{db.NewBatch()} }

// SetKeyID records the id of the cluster sealing key the shard's entries
// are sealed with.
func (mb *MetaBatch) SetKeyID(id []byte) { mb.b.Set(metaKeyID, id, nil) }

// CommitApplied records index as the shard's last applied raft entry and
// commits the batch without an fsync. The batch cannot be used afterwards.
func (mb *MetaBatch) CommitApplied(index uint64) error {
	return mb.commitApplied(metaApplied, index)
}

// commitApplied sets key to index and commits b without waiting for an
// fsync (the raft log behind it is durable already).
func (b *Batch) commitApplied(key []byte, index uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], index)
	b.b.Set(key, v[:], nil)
	b.db.flushAudit(b.b, []*Batch{b})
	b.db.closeMu.RLock()
	defer b.db.closeMu.RUnlock()
	defer b.b.Close()
	if b.db.closed.Load() {
		return ErrClosed
	}
	if err := b.db.pdb.Apply(b.b, pebble.NoSync); err != nil {
		return fmt.Errorf("wal.CommitApplied: %w", err)
	}
	return nil
}

// MetaState is what the metadata shard's state machine resumes from.
type MetaState struct {
	Applied uint64 // last applied raft index, 0 for a new replica
	KeyID   []byte // the sealing key id recorded, nil for none yet
}

// ReadMetaState reads the metadata shard's applied index and key id.
func (db *DB) ReadMetaState() (MetaState, error) {
	var s MetaState
	v, err := db.get(metaApplied)
	switch {
	case err == nil && len(v) == 8:
		s.Applied = binary.BigEndian.Uint64(v)
	case err == nil:
		return s, fmt.Errorf("%w: applied index of the metadata shard", ErrCorrupt)
	case !errors.Is(err, ErrNotFound):
		return s, fmt.Errorf("wal.ReadMetaState: %w", err)
	}
	v, err = db.get(metaKeyID)
	switch {
	case err == nil:
		s.KeyID = v
	case !errors.Is(err, ErrNotFound):
		return s, fmt.Errorf("wal.ReadMetaState: %w", err)
	}
	return s, nil
}

// ConfigSet is every object of the replicated kinds, secrets in clear.
type ConfigSet struct {
	Sources      []model.Source             `json:"sources"`
	Destinations []model.Destination        `json:"destinations"`
	Agents       []SecretAgent              `json:"agents"`
	Forwards     []model.Forward            `json:"forwards"`
	Tokens       map[string]json.RawMessage `json:"tokens"`  // name -> the stored record (a hash, no secret)
	Members      map[string]json.RawMessage `json:"members"` // id -> the member record
	// Proposals are the recent entries' results by entry id (KindProposal).
	Proposals map[string]json.RawMessage `json:"proposals,omitempty"`
}

// SecretAgent is an agent with its secret, which model.Agent never
// marshals.
type SecretAgent struct {
	model.Agent
	Secret string `json:"secret"`
}

// ReadConfigSet reads every object of the replicated kinds. Call it where
// nothing writes them meanwhile (the metadata shard's apply goroutine).
func (db *DB) ReadConfigSet() (ConfigSet, error) {
	var cs ConfigSet
	var err error
	if cs.Sources, err = db.Sources(); err != nil {
		return cs, err
	}
	if cs.Destinations, err = db.Destinations(); err != nil {
		return cs, err
	}
	agents, err := db.Agents()
	if err != nil {
		return cs, err
	}
	for _, a := range agents {
		cs.Agents = append(cs.Agents, SecretAgent{Agent: a, Secret: a.Secret})
	}
	if cs.Forwards, err = db.Forwards(); err != nil {
		return cs, err
	}
	if cs.Tokens, err = db.rawConfig(KindToken); err != nil {
		return cs, err
	}
	if cs.Members, err = db.rawConfig(KindMember); err != nil {
		return cs, err
	}
	cs.Proposals, err = db.rawConfig(KindProposal)
	return cs, err
}

// rawConfig reads every object of a kind as its stored JSON.
func (db *DB) rawConfig(kind byte) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := db.LoadConfig(kind, func(slug string, raw []byte) error {
		out[slug] = append(json.RawMessage(nil), raw...)
		return nil
	})
	return out, err
}

// RestoreConfigSet replaces every object of the replicated kinds with cs
// (secrets sealed with this store's key), and records applied and keyID,
// in one synced batch: a failure changes nothing.
func (db *DB) RestoreConfigSet(cs ConfigSet, applied uint64, keyID []byte) error {
	b := db.NewBatch()
	defer b.Discard()
	for _, k := range ReplicatedKinds {
		lo := []byte{prefixConfig, k}
		b.b.DeleteRange(lo, prefixEnd(lo), nil)
	}
	for _, s := range cs.Sources {
		if err := b.PutSource(s); err != nil {
			return err
		}
	}
	for _, d := range cs.Destinations {
		if err := b.PutDestination(d); err != nil {
			return err
		}
	}
	for _, a := range cs.Agents {
		a.Agent.Secret = a.Secret
		if err := b.PutAgent(a.Agent); err != nil {
			return err
		}
	}
	for _, f := range cs.Forwards {
		if err := b.PutForward(f); err != nil {
			return err
		}
	}
	for _, kind := range []struct {
		k    byte
		objs map[string]json.RawMessage
	}{{KindToken, cs.Tokens}, {KindMember, cs.Members}, {KindProposal, cs.Proposals}} {
		for slug, raw := range kind.objs {
			if !json.Valid(raw) {
				return fmt.Errorf("wal.RestoreConfigSet: %w: %q of kind %q", ErrCorrupt, slug, kind.k)
			}
			b.b.Set(configKey(kind.k, slug), raw, nil)
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], applied)
	b.b.Set(metaApplied, v[:], nil)
	if keyID != nil {
		b.b.Set(metaKeyID, keyID, nil)
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return ErrClosed
	}
	if err := db.pdb.Apply(b.b, pebble.Sync); err != nil {
		return fmt.Errorf("wal.RestoreConfigSet: %w", err)
	}
	return nil
}

// PutTokenRecord stores an admin token's record (JSON, a hash and no
// secret) under name.
func (b *Batch) PutTokenRecord(name string, raw json.RawMessage) error {
	if !json.Valid(raw) {
		return fmt.Errorf("wal.PutTokenRecord: %w: token %q is not JSON", ErrCorrupt, name)
	}
	b.b.Set(configKey(KindToken, name), raw, nil)
	return nil
}
