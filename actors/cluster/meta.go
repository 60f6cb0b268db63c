package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/lni/dragonboat/v4"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// MetaShard is the raft shard id of the metadata shard.
const MetaShard = 1

// ConfigApplier is the member's node as the metadata shard sees it
// (*actors.Node).
type ConfigApplier interface {
	// UseConfigReplicator is called once at start: the node proposes
	// every configuration change through the shard from then on.
	UseConfigReplicator(actors.ConfigReplicator)
	// ApplyCommitted applies one committed change (see actors).
	ApplyCommitted(c actors.Change, b *wal.Batch, commit func() error) error
	// ReloadConfig reads the configuration again after a snapshot
	// replaced it in the store.
	ReloadConfig() error
}

// Metadata entry kinds. Never redefine a byte; add a new one.
const (
	metaKindChange  = 1 // a configuration change, sealed
	metaKindMembers = 2 // a membership record (members.go), sealed
)

// metaVersion is the version of a change's encoding (the JSON of
// changeWire); a decoder refuses versions it does not know.
const metaVersion = 1

// More result values (see entry.go), of metadata entries.
const (
	// ResultRefused: a change the configuration refused (validation, or
	// an object that is no longer there); nothing was applied. Data is
	// the refusal (encodeRefusal).
	ResultRefused = 5
	// ResultSealKey: the entry is sealed with a cluster sealing key other
	// than this member's; it is not applied here, and the member stops.
	ResultSealKey = 6
)

// metaHeaderLen: kind, version, key id.
const metaHeaderLen = 2 + sealKeyIDLen

// maxMetaEntry bounds an entry before anything is opened.
const maxMetaEntry = 64 << 20

// metaEntry is a decoded metadata entry's envelope.
type metaEntry struct {
	kind, version byte
	keyID         []byte
	header        []byte // the associated data of the sealed part
	sealed        []byte
}

// encodeMetaChange seals a change's encoding with key.
func encodeMetaChange(key *SealKey, plain []byte) []byte {
	return encodeMeta(metaKindChange, key, plain)
}

// encodeMeta seals an entry of kind with key.
func encodeMeta(kind byte, key *SealKey, plain []byte) []byte {
	hdr := append([]byte{kind, metaVersion}, key.id...)
	return key.seal(bytes.Clone(hdr), hdr, plain)
}

// decodeMetaEntry reads an entry's envelope; it never panics. The slices
// alias b.
func decodeMetaEntry(b []byte) (metaEntry, error) {
	if len(b) < metaHeaderLen || len(b) > maxMetaEntry {
		return metaEntry{}, errBadEntry
	}
	e := metaEntry{kind: b[0], version: b[1], keyID: b[2:metaHeaderLen], header: b[:metaHeaderLen], sealed: b[metaHeaderLen:]}
	if e.kind != metaKindChange && e.kind != metaKindMembers || e.version != metaVersion {
		return metaEntry{}, errBadEntry
	}
	return e, nil
}

// metaDecision is what the state machine does with an entry.
type metaDecision int

const (
	metaApply      metaDecision = iota // open it and apply the change
	metaBad                            // ResultBad: record the index, apply nothing
	metaForeignKey                     // ResultSealKey: apply nothing, record nothing, stop
)

// decideMeta decides an entry from its envelope alone: decodeErr is
// decodeMetaEntry's, mine is this member's key, recorded the key id the
// store holds (nil for none yet).
func decideMeta(e metaEntry, decodeErr error, mine *SealKey, recorded []byte) metaDecision {
	switch {
	case decodeErr != nil:
		return metaBad
	case !mine.is(e.keyID), recorded != nil && !mine.is(recorded):
		return metaForeignKey
	}
	return metaApply
}

// changeWire is a configuration change as a metadata entry carries it
// (inside the seal): every field of actors.Change, agents with their
// secrets.
type changeWire struct {
	Sources            []model.Source       `json:"sources,omitempty"`
	Destinations       []model.Destination  `json:"destinations,omitempty"`
	Agents             []wal.SecretAgent    `json:"agents,omitempty"`
	Forwards           []model.Forward      `json:"forwards,omitempty"`
	DeleteSources      []string             `json:"delete_sources,omitempty"`
	DeleteDestinations []string             `json:"delete_destinations,omitempty"`
	DeleteAgents       []string             `json:"delete_agents,omitempty"`
	DeleteForwards     []string             `json:"delete_forwards,omitempty"`
	Tokens             []actors.TokenRecord `json:"tokens,omitempty"`
	DeleteTokens       []string             `json:"delete_tokens,omitempty"`
	NewSigningSecrets  map[string]string    `json:"new_signing_secrets,omitempty"`
	Actor              string               `json:"actor,omitempty"`
	KeepAgentSecrets   bool                 `json:"keep_agent_secrets,omitempty"`
	CreateOnly         bool                 `json:"create_only,omitempty"`
	UpdateOnly         bool                 `json:"update_only,omitempty"`
	Audit              []wal.AuditEntry     `json:"audit,omitempty"`
}

func encodeChange(c actors.Change) ([]byte, error) {
	w := changeWire{
		Sources: c.Sources, Destinations: c.Destinations, Forwards: c.Forwards,
		DeleteSources: c.DeleteSources, DeleteDestinations: c.DeleteDestinations, DeleteAgents: c.DeleteAgents, DeleteForwards: c.DeleteForwards,
		Tokens: c.Tokens, DeleteTokens: c.DeleteTokens, NewSigningSecrets: c.NewSigningSecrets,
		Actor: c.Actor, KeepAgentSecrets: c.KeepAgentSecrets, Audit: c.Audit, CreateOnly: c.CreateOnly, UpdateOnly: c.UpdateOnly,
	}
	for _, a := range c.Agents {
		w.Agents = append(w.Agents, wal.SecretAgent{Agent: a, Secret: a.Secret})
	}
	return json.Marshal(w)
}

// decodeChange is encodeChange's inverse; unknown fields are refused.
func decodeChange(b []byte) (actors.Change, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var w changeWire
	if err := d.Decode(&w); err != nil {
		return actors.Change{}, fmt.Errorf("%w: %v", errBadEntry, err)
	}
	if d.More() {
		return actors.Change{}, errBadEntry
	}
	c := actors.Change{
		Sources: w.Sources, Destinations: w.Destinations, Forwards: w.Forwards,
		DeleteSources: w.DeleteSources, DeleteDestinations: w.DeleteDestinations, DeleteAgents: w.DeleteAgents, DeleteForwards: w.DeleteForwards,
		Tokens: w.Tokens, DeleteTokens: w.DeleteTokens, NewSigningSecrets: w.NewSigningSecrets,
		Actor: w.Actor, KeepAgentSecrets: w.KeepAgentSecrets, Audit: w.Audit, CreateOnly: w.CreateOnly, UpdateOnly: w.UpdateOnly,
	}
	for _, a := range w.Agents {
		a.Agent.Secret = a.Secret
		c.Agents = append(c.Agents, a.Agent)
	}
	return c, nil
}

// Refusal codes (the first byte of a ResultRefused's Data).
const (
	refusedOther    = 1
	refusedNotFound = 2
	refusedConflict = 3
	refusedField    = 4 // then field, 0, message
)

func encodeRefusal(err error) []byte {
	var fe *model.FieldError
	switch {
	case errors.As(err, &fe):
		return append([]byte{refusedField}, fe.Field+"\x00"+fe.Message...)
	case errors.Is(err, actors.ErrNotFound):
		return append([]byte{refusedNotFound}, err.Error()...)
	case errors.Is(err, actors.ErrConflict):
		return append([]byte{refusedConflict}, err.Error()...)
	}
	return append([]byte{refusedOther}, err.Error()...)
}

// refusal is a change the metadata shard refused, as the proposer sees it.
type refusal struct {
	msg  string
	kind error // actors.ErrNotFound, ErrConflict or nil
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

func decodeRefusal(b []byte) error {
	if len(b) == 0 {
		return &refusal{msg: "cluster: the change was refused"}
	}
	msg := string(b[1:])
	switch b[0] {
	case refusedField:
		field, m, _ := strings.Cut(msg, "\x00")
		return &model.FieldError{Field: field, Message: m}
	case refusedNotFound:
		return &refusal{msg: msg, kind: actors.ErrNotFound}
	case refusedConflict:
		return &refusal{msg: msg, kind: actors.ErrConflict}
	}
	return &refusal{msg: msg}
}

// metaShard is this member's side of the metadata shard.
type metaShard struct {
	failed chan error // the first fatal problem (a foreign sealing key)
}

func (m *metaShard) fail(err error) {
	select {
	case m.failed <- err:
	default:
	}
}

// startMeta starts this member's replica of the metadata shard. A store
// whose configuration was sealed with another cluster key refuses.
func (c *Cluster) startMeta(members map[uint64]dragonboat.Target) error {
	st, err := c.cfg.DB.ReadMetaState()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	key := c.cfg.SealKey
	if st.KeyID != nil && !key.is(st.KeyID) {
		return fmt.Errorf("cluster: this member's sealing key (id %s) is not the cluster's: its configuration was sealed with key id %x; give every member the same --cluster-seal-key", key.ID(), st.KeyID)
	}
	c.meta = &metaShard{failed: make(chan error, 1)}
	rc := c.replicaConfig(MetaShard, 1000, 100)
	factory := func(uint64, uint64) sm.IOnDiskStateMachine {
		return &metaSM{db: c.cfg.DB, key: key, apply: c.cfg.Configs, fail: c.meta.fail, log: c.log}
	}
	if err := c.nh.StartOnDiskReplica(members, c.cfg.Join, factory, rc); err != nil {
		return fmt.Errorf("cluster: metadata shard: %w", err)
	}
	c.cfg.Configs.UseConfigReplicator(c)
	if !c.cfg.Join {
		c.wg.Add(1)
		go c.recordInitialMembers()
	}
	c.wg.Add(1)
	go c.recordAdminURL()
	return nil
}

// Failed delivers the first problem that makes this member unfit to run
// (its sealing key is not the cluster's); serve stops on it. Nil without a
// metadata shard.
func (c *Cluster) Failed() <-chan error {
	if c.meta == nil {
		return nil
	}
	return c.meta.failed
}

// ProposeChange implements actors.ConfigReplicator: it seals c with the
// cluster key, commits it to the metadata shard and returns once this
// member applied it, with the refusal if the configuration refused it.
func (c *Cluster) ProposeChange(ctx context.Context, ch actors.Change) error {
	if c.meta == nil {
		return errors.New("cluster: no metadata shard")
	}
	plain, err := encodeChange(ch)
	if err != nil {
		return err
	}
	res, err := c.proposeTo(ctx, MetaShard, "the metadata shard", encodeMetaChange(c.cfg.SealKey, plain))
	if err != nil {
		return err
	}
	switch res.Value {
	case ResultAccepted:
		return nil
	case ResultRefused:
		return decodeRefusal(res.Data)
	case ResultSealKey:
		return fmt.Errorf("%w: this member's sealing key is not the cluster's", actors.ErrUnavailable)
	}
	return fmt.Errorf("cluster: the metadata shard refused a change (result %d)", res.Value)
}

// CatchUp implements actors.ConfigReplicator: a linearizable read of the
// metadata shard, which returns once this replica applied every entry
// committed before it (retried through elections until ctx ends).
func (c *Cluster) CatchUp(ctx context.Context) error {
	for {
		// One try waits at most a second: a read asked of a leader that
		// was just deposed (or before this member heard of one) is
		// dropped, not refused, and would otherwise use up all of ctx.
		try, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.nh.SyncRead(try, MetaShard, nil)
		cancel()
		if err == nil {
			return nil
		}
		if !dragonboat.IsTempError(err) && !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return fmt.Errorf("%w: the metadata shard: %v", actors.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the metadata shard: %v", actors.ErrUnavailable, err)
		case <-c.closed:
			return fmt.Errorf("%w: leaving the cluster", actors.ErrUnavailable)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metaSM is the metadata shard's on-disk state machine: it applies
// committed configuration changes to the config keys of the node's store
// (through the node, which validates and publishes them), with the
// applied index in the same Pebble batch.
type metaSM struct {
	db    *wal.DB
	key   *SealKey
	apply ConfigApplier
	fail  func(error)
	log   *slog.Logger // nil: quiet

	// Owned by the apply goroutine.
	keyID   []byte // recorded in the store; nil for none yet
	stalled bool   // an entry sealed with another key came: apply nothing more
}

// Open resumes from the store.
func (m *metaSM) Open(<-chan struct{}) (uint64, error) {
	st, err := m.db.ReadMetaState()
	if err != nil {
		return 0, err
	}
	m.keyID = st.KeyID
	return st.Applied, nil
}

// Update applies committed entries, one Pebble batch each. A returned
// error is fatal by design (storage failed), so a bad entry or a refused
// change is a result value. An entry sealed with another key is not
// applied, and neither is anything after it: the applied index stays
// where it was, so this member, restarted with the right key, applies
// them then.
func (m *metaSM) Update(ents []sm.Entry) ([]sm.Entry, error) {
	for i := range ents {
		if m.stalled {
			ents[i].Result = sm.Result{Value: ResultSealKey}
			continue
		}
		e, derr := decodeMetaEntry(ents[i].Cmd)
		switch decideMeta(e, derr, m.key, m.keyID) {
		case metaForeignKey:
			m.stalled = true
			m.fail(fmt.Errorf("cluster: the metadata shard holds an entry sealed with key id %x, and this member's --cluster-seal-key is id %s: stop it and give it the cluster's key (nothing was applied)", e.keyID, m.key.ID()))
			ents[i].Result = sm.Result{Value: ResultSealKey}
			continue
		case metaBad:
			if err := m.skip(ents[i].Index); err != nil {
				return nil, err
			}
			ents[i].Result = sm.Result{Value: ResultBad}
			continue
		}
		id := entryID(ents[i].Cmd)
		prior, again, err := m.prior(id)
		if err != nil {
			return nil, err
		}
		if again {
			// A retried proposal's second copy: the first one's result,
			// nothing applied.
			if err := m.skip(ents[i].Index); err != nil {
				return nil, err
			}
			ents[i].Result = prior
			continue
		}
		applyEntry := m.applyChange
		if e.kind == metaKindMembers {
			applyEntry = m.applyMembers
		}
		res, err := applyEntry(e, ents[i].Index, id)
		if err != nil {
			return nil, err
		}
		ents[i].Result = res
	}
	return ents, nil
}

// applyChange opens and applies one change entry.
func (m *metaSM) applyChange(e metaEntry, index uint64, id string) (sm.Result, error) {
	plain, err := m.key.open(e.header, e.sealed)
	if err != nil {
		return sm.Result{Value: ResultBad}, m.skip(index)
	}
	ch, err := decodeChange(plain)
	if err != nil {
		return sm.Result{Value: ResultBad}, m.skip(index)
	}
	mb := m.db.NewMetaBatch()
	m.recordKey(mb)
	committed := false
	var commitErr error
	refused := m.apply.ApplyCommitted(ch, mb.Batch, func() error {
		committed = true
		if commitErr = m.record(mb, index, id, sm.Result{Value: ResultAccepted}); commitErr == nil {
			commitErr = mb.CommitApplied(index)
		}
		return commitErr
	})
	if committed {
		if commitErr != nil {
			return sm.Result{}, fmt.Errorf("cluster: metadata shard: %w", commitErr)
		}
		m.keyID = m.key.id
		return sm.Result{Value: ResultAccepted}, nil
	}
	mb.Discard()
	res := sm.Result{Value: ResultRefused, Data: encodeRefusal(refused)}
	if err := m.commitResult(m.db.NewMetaBatch(), index, id, res); err != nil {
		return sm.Result{}, err
	}
	return res, nil
}

// applyMembers opens and applies one members entry.
func (m *metaSM) applyMembers(e metaEntry, index uint64, id string) (sm.Result, error) {
	plain, err := m.key.open(e.header, e.sealed)
	if err != nil {
		return sm.Result{Value: ResultBad}, m.skip(index)
	}
	mb := m.db.NewMetaBatch()
	m.recordKey(mb)
	ok, err := m.applyMembersEntry(plain, mb)
	if err != nil || !ok {
		mb.Discard()
		if err != nil {
			return sm.Result{}, fmt.Errorf("cluster: metadata shard: %w", err)
		}
		return sm.Result{Value: ResultBad}, m.skip(index)
	}
	if err := m.commitResult(mb, index, id, sm.Result{Value: ResultAccepted}); err != nil {
		return sm.Result{}, err
	}
	m.keyID = m.key.id
	return sm.Result{Value: ResultAccepted}, nil
}

// commitResult records entry id's result into mb and commits mb as
// applied up to index.
func (m *metaSM) commitResult(mb *wal.MetaBatch, index uint64, id string, res sm.Result) error {
	if err := m.record(mb, index, id, res); err != nil {
		mb.Discard()
		return fmt.Errorf("cluster: metadata shard: %w", err)
	}
	if err := mb.CommitApplied(index); err != nil {
		return fmt.Errorf("cluster: metadata shard: %w", err)
	}
	return nil
}

// Retried proposals.
//
// proposeTo tries a proposal a second at a time and, after a try that
// timed out, proposes the same bytes again; the first copy may still
// commit (an apply slower than the try, a leader deposed after it
// replicated the entry). A change applied twice is wrong: the second copy
// of a create or a delete is refused (the caller hears 409 or 404 for a
// change that was made, and a created token's secret is lost), and a
// second copy of an update that commits after another member's change
// undoes that change. So the state machine records every entry it applies
// under the entry's id (a hash of its bytes, which the seal's random nonce
// makes distinct for every proposal) with its result, in the batch that
// applies it, and answers a copy with the first one's result, applying
// nothing. Records older than proposalSpan entries are pruned every
// pruneEvery indexes, by the index alone, so every replica keeps the same
// ones; snapshots carry them (wal.ConfigSet.Proposals).
const (
	proposalSpan = 4096
	pruneEvery   = 512
)

// proposalRecord is an applied entry's result (KindProposal).
type proposalRecord struct {
	Index uint64 `json:"index"`
	Value uint64 `json:"value"`
	Data  []byte `json:"data,omitempty"`
}

// entryID names an entry by its bytes.
func entryID(cmd []byte) string {
	h := sha256.Sum256(cmd)
	return hex.EncodeToString(h[:16])
}

// prior reads the result of an entry applied before with the same id.
func (m *metaSM) prior(id string) (sm.Result, bool, error) {
	raw, err := m.db.GetConfig(wal.KindProposal, id)
	switch {
	case errors.Is(err, wal.ErrNotFound):
		return sm.Result{}, false, nil
	case err != nil:
		return sm.Result{}, false, fmt.Errorf("cluster: metadata shard: %w", err)
	}
	var r proposalRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return sm.Result{}, false, fmt.Errorf("cluster: metadata shard: %w: proposal record %s", wal.ErrCorrupt, id)
	}
	return sm.Result{Value: r.Value, Data: r.Data}, true, nil
}

// record stages entry id's result into mb, and at every pruneEvery-th
// index the deletion of records older than proposalSpan entries.
func (m *metaSM) record(mb *wal.MetaBatch, index uint64, id string, res sm.Result) error {
	if err := mb.PutConfig(wal.KindProposal, id, proposalRecord{Index: index, Value: res.Value, Data: res.Data}); err != nil {
		return err
	}
	if index%pruneEvery != 0 || index <= proposalSpan {
		return nil
	}
	return m.db.LoadConfig(wal.KindProposal, func(slug string, raw []byte) error {
		var r proposalRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%w: proposal record %s", wal.ErrCorrupt, slug)
		}
		if r.Index <= index-proposalSpan {
			mb.DeleteConfig(wal.KindProposal, slug)
		}
		return nil
	})
}

// skip records index as applied with nothing else.
func (m *metaSM) skip(index uint64) error {
	mb := m.db.NewMetaBatch()
	if err := mb.CommitApplied(index); err != nil {
		return fmt.Errorf("cluster: metadata shard: %w", err)
	}
	return nil
}

func (m *metaSM) recordKey(mb *wal.MetaBatch) {
	if m.keyID == nil {
		mb.SetKeyID(m.key.id)
	}
}

// Lookup answers nothing: reads go to the store. CatchUp's linearizable
// read calls it once this replica applied up to the read index.
func (m *metaSM) Lookup(any) (any, error) { return nil, nil }

// Sync makes every apply so far durable before dragonboat compacts the
// log behind it.
func (m *metaSM) Sync() error { return m.db.SyncReplicas() }

// metaSnapshot is the metadata shard at one applied index.
type metaSnapshot struct {
	Applied uint64        `json:"applied"`
	Config  wal.ConfigSet `json:"config"`
}

// metaSnapshotFormat starts a snapshot stream: then the key id and the
// sealed JSON of a metaSnapshot.
const metaSnapshotFormat = 1

// PrepareSnapshot reads the replicated configuration; dragonboat calls it
// between Updates, so it is the state at one index.
func (m *metaSM) PrepareSnapshot() (any, error) {
	st, err := m.db.ReadMetaState()
	if err != nil {
		return nil, err
	}
	cs, err := m.db.ReadConfigSet()
	if err != nil {
		return nil, err
	}
	return &metaSnapshot{Applied: st.Applied, Config: cs}, nil
}

// SaveSnapshot writes the snapshot sealed with the cluster key: it is
// stored on disk and sent to members that fell behind.
func (m *metaSM) SaveSnapshot(ctx any, w io.Writer, _ <-chan struct{}) error {
	plain, err := json.Marshal(ctx.(*metaSnapshot))
	if err != nil {
		return err
	}
	hdr := append([]byte{metaSnapshotFormat}, m.key.id...)
	_, err = w.Write(m.key.seal(bytes.Clone(hdr), hdr, plain))
	return err
}

// RecoverFromSnapshot replaces the replicated configuration with a
// snapshot's and has the node reload it.
func (m *metaSM) RecoverFromSnapshot(r io.Reader, _ <-chan struct{}) error {
	b, err := io.ReadAll(io.LimitReader(r, maxMetaEntry+1))
	if err != nil {
		return fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	snap, err := m.openSnapshot(b)
	if err != nil {
		return err
	}
	if err := m.db.RestoreConfigSet(snap.Config, snap.Applied, m.key.id); err != nil {
		return fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	m.keyID = m.key.id
	if m.log != nil {
		m.log.Info("configuration restored from a metadata snapshot", "applied_index", snap.Applied,
			"sources", len(snap.Config.Sources), "destinations", len(snap.Config.Destinations), "agents", len(snap.Config.Agents), "tokens", len(snap.Config.Tokens))
	}
	return m.apply.ReloadConfig()
}

func (m *metaSM) openSnapshot(b []byte) (*metaSnapshot, error) {
	hdrLen := 1 + sealKeyIDLen
	if len(b) < hdrLen || len(b) > maxMetaEntry || b[0] != metaSnapshotFormat {
		return nil, fmt.Errorf("cluster: metadata snapshot: %w", errBadEntry)
	}
	if id := b[1:hdrLen]; !m.key.is(id) {
		err := fmt.Errorf("cluster: a metadata snapshot sealed with key id %x, and this member's --cluster-seal-key is id %s: give it the cluster's key", id, m.key.ID())
		m.fail(err)
		return nil, err
	}
	plain, err := m.key.open(b[:hdrLen], b[hdrLen:])
	if err != nil {
		return nil, fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(plain))
	d.DisallowUnknownFields()
	var snap metaSnapshot
	if err := d.Decode(&snap); err != nil {
		return nil, fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	return &snap, nil
}

// Close does nothing: the store belongs to the node.
func (m *metaSM) Close() error { return nil }
