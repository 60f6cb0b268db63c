package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

// Membership records.
//
// raft keeps each shard's membership itself; the metadata shard also
// records the cluster's members (c m <id>), so any member can list them
// from its own store: the initial members once the shard first has a
// quorum (the first proposal wins; the others change nothing), a member
// added by AddNode once every shard took it, a member removed by
// RemoveNode once every shard dropped it. The status shows which members
// are recorded, beside raft's view.

// MemberRecord is one member as the metadata shard records it.
type MemberRecord struct {
	ID      uint64    `json:"id"`
	Address string    `json:"address"` // its raft address
	Added   time.Time `json:"added,omitzero"`
	Initial bool      `json:"initial,omitempty"`
	// AdminURL is the member's admin API base URL as the others reach it
	// (serve --admin-advertise-url, or derived from its --admin-addr),
	// recorded by the member itself; empty when it has none to give.
	AdminURL string `json:"admin_url,omitempty"`
}

// membersWire is a members entry (sealed like a change).
type membersWire struct {
	Set    []MemberRecord `json:"set,omitempty"`
	Remove []uint64       `json:"remove,omitempty"`
	// IfNone: apply Set only if no member is recorded yet (the initial
	// members, proposed by every member at its first start).
	IfNone bool `json:"if_none,omitempty"`
	// AdminURLs sets recorded members' admin URLs ("" clears one); an id
	// not recorded is left alone (its member records it again later).
	AdminURLs map[uint64]string `json:"admin_urls,omitempty"`
}

// maxAdminURL bounds a recorded admin URL.
const maxAdminURL = 2048

// applyMembers decides a members entry against the records there are:
// the records to write and the ids to delete. ok is false for an entry
// that makes no sense (an id 0, an empty address, an id both set and
// removed): nothing is applied.
func applyMembers(have map[uint64]MemberRecord, w membersWire) (put []MemberRecord, del []uint64, ok bool) {
	for _, r := range w.Set {
		if r.ID == 0 || r.Address == "" || slices.Contains(w.Remove, r.ID) {
			return nil, nil, false
		}
	}
	if slices.Contains(w.Remove, 0) {
		return nil, nil, false
	}
	for id, u := range w.AdminURLs {
		if id == 0 || len(u) > maxAdminURL {
			return nil, nil, false
		}
	}
	if w.IfNone && len(have) > 0 {
		return nil, nil, true
	}
	for _, r := range w.Set {
		if cur, ok := have[r.ID]; ok && cur.Address == r.Address {
			continue // recorded already (a retried add-node keeps its first time)
		}
		put = append(put, r)
	}
	for _, id := range w.Remove {
		if _, ok := have[id]; ok {
			del = append(del, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.AdminURLs)) {
		at := slices.IndexFunc(put, func(r MemberRecord) bool { return r.ID == id })
		r, ok := have[id]
		if at >= 0 {
			r, ok = put[at], true
		}
		if !ok || slices.Contains(del, id) || r.AdminURL == w.AdminURLs[id] {
			continue
		}
		r.AdminURL = w.AdminURLs[id]
		if at >= 0 {
			put[at] = r
		} else {
			put = append(put, r)
		}
	}
	return put, del, true
}

// readMembers reads the recorded members.
func readMembers(db *wal.DB) (map[uint64]MemberRecord, error) {
	out := map[uint64]MemberRecord{}
	err := db.LoadConfig(wal.KindMember, func(slug string, raw []byte) error {
		var r MemberRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%w: member record %q", wal.ErrCorrupt, slug)
		}
		out[r.ID] = r
		return nil
	})
	return out, err
}

// applyMembersEntry applies a decoded members entry into mb. ok is false
// when the entry is refused (nothing staged).
func (m *metaSM) applyMembersEntry(plain []byte, mb *wal.MetaBatch) (ok bool, err error) {
	var w membersWire
	if err := json.Unmarshal(plain, &w); err != nil {
		return false, nil
	}
	have, err := readMembers(m.db)
	if err != nil {
		return false, err
	}
	put, del, ok := applyMembers(have, w)
	if !ok {
		return false, nil
	}
	for _, r := range put {
		if err := mb.PutConfig(wal.KindMember, strconv.FormatUint(r.ID, 10), r); err != nil {
			return false, err
		}
	}
	for _, id := range del {
		mb.DeleteConfig(wal.KindMember, strconv.FormatUint(id, 10))
	}
	return true, nil
}

// proposeMembers commits a members entry.
func (c *Cluster) proposeMembers(ctx context.Context, w membersWire) error {
	plain, err := json.Marshal(w)
	if err != nil {
		return err
	}
	res, err := c.proposeTo(ctx, MetaShard, "the metadata shard", encodeMeta(metaKindMembers, c.cfg.SealKey, plain))
	if err != nil {
		return err
	}
	if res.Value != ResultAccepted {
		return fmt.Errorf("cluster: the metadata shard refused a membership record (result %d)", res.Value)
	}
	return nil
}

// recordMembers records a membership change once it is made in every
// shard; without a metadata shard it does nothing.
func (c *Cluster) recordMembers(ctx context.Context, w membersWire) error {
	if c.meta == nil {
		return nil
	}
	if err := c.proposeMembers(ctx, w); err != nil {
		return fmt.Errorf("membership changed in every shard, but not recorded (run it again): %w", err)
	}
	return nil
}

// recordInitialMembers records the initial members once the metadata
// shard answers, unless some are recorded already; it retries every
// second until it succeeds or the member leaves.
func (c *Cluster) recordInitialMembers() {
	defer c.wg.Done()
	set := make([]MemberRecord, 0, len(c.cfg.Members))
	for id, addr := range c.cfg.Members {
		set = append(set, MemberRecord{ID: id, Address: addr, Initial: true})
	}
	slices.SortFunc(set, func(a, b MemberRecord) int { return int(a.ID) - int(b.ID) })
	c.untilRecorded("recording the initial members", func(ctx context.Context, have map[uint64]MemberRecord) (bool, error) {
		if len(have) > 0 {
			return true, nil
		}
		return true, c.proposeMembers(ctx, membersWire{Set: set, IfNone: true})
	})
}

// untilRecorded calls once with the recorded members, read after
// catching up with the metadata shard, every second until it reports done
// without an error or the member leaves. An error other than the shard
// being unavailable for the moment is logged (what says what is done).
func (c *Cluster) untilRecorded(what string, once func(ctx context.Context, have map[uint64]MemberRecord) (done bool, err error)) {
	for {
		done, err := func() (bool, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() {
				select {
				case <-c.closed:
					cancel()
				case <-ctx.Done():
				}
			}()
			if err := c.CatchUp(ctx); err != nil {
				return false, err
			}
			have, err := readMembers(c.cfg.DB)
			if err != nil {
				return false, err
			}
			return once(ctx, have)
		}()
		if done && err == nil {
			return
		}
		if err != nil && !errors.Is(err, actors.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			c.log.Warn(what, "err", err)
		}
		select {
		case <-c.closed:
			return
		case <-time.After(time.Second):
		}
	}
}

// MetaStatus is the metadata shard as this member sees it.
type MetaStatus struct {
	Replicas     []uint64
	Leader, Term uint64 // Leader 0: none known
	Applied      uint64
	SealKeyID    string // this member's
}

// addMembership puts the recorded members into st's nodes (adding those
// raft does not list, marking those it does) and the metadata shard's
// state into st.
func (c *Cluster) addMembership(st *Status, addrs map[uint64]string) error {
	if c.meta == nil {
		return nil
	}
	recs, err := readMembers(c.cfg.DB)
	if err != nil {
		return err
	}
	for id, r := range recs {
		if _, ok := addrs[id]; !ok {
			addrs[id] = r.Address
		}
	}
	meta, err := c.MetaStatus()
	if err != nil {
		return err
	}
	st.Meta = meta
	st.Recorded = recs
	return nil
}

// MetaStatus reports the metadata shard as this member sees it, asking no
// other member; nil without a metadata shard.
func (c *Cluster) MetaStatus() (*MetaStatus, error) {
	if c.meta == nil {
		return nil, nil
	}
	ms, err := c.cfg.DB.ReadMetaState()
	if err != nil {
		return nil, err
	}
	meta := &MetaStatus{Applied: ms.Applied, SealKeyID: c.cfg.SealKey.ID()}
	for _, si := range c.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.ShardID == MetaShard {
			for id := range si.Replicas {
				meta.Replicas = append(meta.Replicas, id)
			}
			slices.Sort(meta.Replicas)
		}
	}
	if leader, term, valid, err := c.nh.GetLeaderID(MetaShard); err == nil && valid {
		meta.Leader, meta.Term = leader, term
	}
	return meta, nil
}
