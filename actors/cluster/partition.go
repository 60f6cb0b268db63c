package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/webhookops/webhookops/wal"
)

// Observer is told what a partition applied. Calls come from dragonboat's
// apply goroutine of that partition, in log order; they must not block.
type Observer interface {
	// TakeoverApplied: fence is now the partition's owner.
	TakeoverApplied(part uint16, fence Fence)
	// EventApplied: a new event (not a duplicate) is committed and stored.
	// Its destinations named in inboxed get an inbox entry from the
	// proposer (InboxApplied); the rest are taken from the outbox.
	EventApplied(ev *wal.Event, inboxed []string)
	// InboxApplied: event (part, seq) joined dest's inbox, in this
	// partition's log order.
	InboxApplied(dest string, part uint16, seq uint64)
}

// appliedEvent is an event applied in one Update, with the destinations
// its proposer sends inbox entries.
type appliedEvent struct {
	ev      *wal.Event
	inboxed []string
}

// partitionSM is the on-disk state machine of one partition: it applies
// committed entries to the partition's key range in the node's store,
// with the applied index in the same batch.
//
// Everything it decides depends only on the entries and the partition's
// stored state, so every replica decides the same: the dedupe window
// travels in the ingest entry and the receive time in the event.
type partitionSM struct {
	db   *wal.DB
	part uint16
	obs  Observer

	// Owned by the apply goroutine (Open, Update, RecoverFromSnapshot).
	fence   Fence
	lastSeq uint64
}

func newPartitionSM(db *wal.DB, part uint16, obs Observer) *partitionSM {
	return &partitionSM{db: db, part: part, obs: obs}
}

func (p *partitionSM) load() (uint64, error) {
	st, err := p.db.ReadReplicaState(p.part)
	if err != nil {
		return 0, err
	}
	p.fence = Fence{Term: st.FenceTerm, Node: st.FenceNode}
	p.lastSeq = st.LastSeq
	return st.Applied, nil
}

// Open resumes from the store.
func (p *partitionSM) Open(<-chan struct{}) (uint64, error) { return p.load() }

type dedupeHit struct {
	seq uint64
	at  time.Time
}

// Update applies committed entries. A returned error is fatal by design
// (storage failed; the entries are applied again after restart), so every
// rejection of an entry is a result value instead.
func (p *partitionSM) Update(ents []sm.Entry) ([]sm.Entry, error) {
	rb := p.db.NewReplicaBatch(p.part)
	var written map[string]dedupeHit // keys written earlier in this call
	var inboxSeen map[string]bool    // inbox entries written earlier in this call
	var applied []appliedEvent
	var inboxed []inboxRef
	var takeover *Fence
	for i := range ents {
		e, err := decodeEntry(ents[i].Cmd)
		if err != nil {
			ents[i].Result = sm.Result{Value: ResultBad}
			continue
		}
		switch e.kind {
		case kindIngest, kindIngestTo:
			ev, err := wal.DecodeEvent(p.part, 0, e.body)
			if err != nil {
				ents[i].Result = sm.Result{Value: ResultBad}
				continue
			}
			k := ev.Source + "\x00" + ev.IdemKey
			hit, found := written[k]
			if !found {
				seq, at, err := p.db.GetDedupeAfter(p.part, ev.Source, ev.IdemKey, ev.ReceivedAt.Add(-e.window))
				switch {
				case err == nil:
					hit, found = dedupeHit{seq, at}, true
				case !errors.Is(err, wal.ErrNotFound):
					rb.Discard()
					return nil, fmt.Errorf("cluster: partition %d: %w", p.part, err)
				}
			}
			if found && ev.ReceivedAt.Sub(hit.at) < e.window {
				ents[i].Result = sm.Result{Value: ResultDuplicate, Data: seqBytes(hit.seq)}
				continue
			}
			p.lastSeq = nextSeq(p.lastSeq, ev.ReceivedAt, p.part)
			ev.Seq = p.lastSeq
			rb.PutEvent(ev)
			rb.PutDedupe(p.part, ev.Source, ev.IdemKey, ev.Seq, ev.ReceivedAt)
			for _, d := range ev.Destinations {
				rb.PutOutbox(p.part, ev.Seq, d)
			}
			if written == nil {
				written = map[string]dedupeHit{}
			}
			written[k] = dedupeHit{ev.Seq, ev.ReceivedAt}
			ae := appliedEvent{ev: ev}
			for _, i := range e.inboxed {
				if i < len(ev.Destinations) {
					ae.inboxed = append(ae.inboxed, ev.Destinations[i])
				}
			}
			applied = append(applied, ae)
			ents[i].Result = sm.Result{Value: ResultAccepted, Data: seqBytes(ev.Seq)}
		case kindInbox:
			// An inbox entry already there, or one already taken into the
			// queue (it has a delivery record), is not added again: a
			// sender's retry of an event whose first try committed its
			// inbox entry must not deliver it twice.
			if slices.ContainsFunc(e.inbox, func(r inboxRef) bool { return p.db.DestPartition(r.dest) != p.part }) {
				ents[i].Result = sm.Result{Value: ResultBad}
				continue
			}
			for _, r := range e.inbox {
				k := r.dest + "\x00" + string(seqBytes(r.seq))
				if inboxSeen[k] {
					continue
				}
				held, err := p.db.InboxHolds(r.dest, r.seq)
				if err != nil {
					rb.Discard()
					return nil, fmt.Errorf("cluster: partition %d: %w", p.part, err)
				}
				if held {
					continue
				}
				if err := rb.PutInbox(r.dest, r.part, r.seq, ents[i].Index); err != nil {
					rb.Discard()
					return nil, fmt.Errorf("cluster: partition %d: %w", p.part, err)
				}
				if inboxSeen == nil {
					inboxSeen = map[string]bool{}
				}
				inboxSeen[k] = true
				inboxed = append(inboxed, r)
			}
			ents[i].Result = sm.Result{Value: ResultAccepted}
		case kindAckOut:
			if err := rb.ApplyOutboxAcks(e.body); err != nil {
				ents[i].Result = sm.Result{Value: ResultBad}
				continue
			}
			ents[i].Result = sm.Result{Value: ResultAccepted}
		case kindTakeover, kindWrite:
			ok, next := p.fence.Admit(e.kind == kindTakeover, e.term, e.node)
			if !ok {
				ents[i].Result = sm.Result{Value: ResultFenced}
				continue
			}
			if e.kind == kindWrite {
				if err := rb.ApplyOps(e.body); err != nil {
					ents[i].Result = sm.Result{Value: ResultBad}
					continue
				}
			} else if next != p.fence {
				rb.SetFence(next.Term, next.Node)
				takeover = &next
			} else {
				takeover = &next // a repeated takeover: tell the owner again
			}
			p.fence = next
			ents[i].Result = sm.Result{Value: ResultAccepted}
		}
	}
	if err := rb.CommitApplied(ents[len(ents)-1].Index); err != nil {
		return nil, fmt.Errorf("cluster: partition %d: %w", p.part, err)
	}
	if p.obs != nil {
		for _, a := range applied {
			p.obs.EventApplied(a.ev, a.inboxed)
		}
		for _, r := range inboxed {
			p.obs.InboxApplied(r.dest, r.part, r.seq)
		}
		if takeover != nil {
			p.obs.TakeoverApplied(p.part, *takeover)
		}
	}
	return ents, nil
}

// nextSeq is the sequence of a partition's next event: the receive time in
// microseconds shifted left 12 bits, with the partition in the low 12 bits,
// or the partition's last sequence plus 1<<12 if that is not above it. So
// sequences are unique across partitions (at most 4096 of them), grow
// within one, and sort by receive time across them, which the event list's
// cursor and the outbox's oldest-first recovery rely on.
func nextSeq(last uint64, at time.Time, part uint16) uint64 {
	var us uint64
	if m := at.UnixMicro(); m > 0 && m < 1<<51 {
		us = uint64(m)
	}
	s := us<<12 | uint64(part&0xfff)
	if s <= last {
		s = last + 1<<12
	}
	return s
}

func seqBytes(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Lookup answers the partition's fence (for status and tests).
func (p *partitionSM) Lookup(any) (any, error) {
	st, err := p.db.ReadReplicaState(p.part)
	if err != nil {
		return nil, err
	}
	return Fence{Term: st.FenceTerm, Node: st.FenceNode}, nil
}

// Sync makes every apply so far durable before dragonboat compacts the
// raft log behind it.
func (p *partitionSM) Sync() error { return p.db.SyncReplicas() }

func (p *partitionSM) PrepareSnapshot() (any, error) { return p.db.PartitionSnapshot(p.part) }

func (p *partitionSM) SaveSnapshot(ctx any, w io.Writer, stop <-chan struct{}) error {
	s := ctx.(*wal.PartSnapshot)
	defer s.Close()
	return s.WriteTo(w, stop)
}

func (p *partitionSM) RecoverFromSnapshot(r io.Reader, stop <-chan struct{}) error {
	if err := p.db.RestorePartition(p.part, r, stop); err != nil {
		return err
	}
	_, err := p.load()
	return err
}

// Close does nothing: the store belongs to the node.
func (p *partitionSM) Close() error { return nil }
