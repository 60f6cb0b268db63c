package cluster

import "context"

// Admin URLs.
//
// A member forwards a replay to the member that delivers its
// destinations through that member's admin API, so it needs the others'
// admin URLs. Each member records its own in its member record
// (Config.AdminURL: serve --admin-advertise-url, or derived from
// --admin-addr), once it is recorded as a member and whenever the URL
// changes across restarts; "" records that it has none, so a stale URL
// does not outlive a member's new --admin-addr. The others read the
// records from their own store (Members) at each use, so they follow
// the records as they change.

// recordAdminURL records Config.AdminURL in this member's record once the
// record exists (the initial members recorded, or this member added) and
// holds another URL; it retries every second until the record holds it.
func (c *Cluster) recordAdminURL() {
	defer c.wg.Done()
	self, want := c.cfg.NodeID, c.cfg.AdminURL
	c.untilRecorded("recording this member's admin URL", func(ctx context.Context, have map[uint64]MemberRecord) (bool, error) {
		r, ok := have[self]
		switch {
		case !ok:
			return false, nil // not recorded yet
		case r.AdminURL == want:
			return true, nil
		}
		if err := c.proposeMembers(ctx, membersWire{AdminURLs: map[uint64]string{self: want}}); err != nil {
			return false, err
		}
		c.log.Info("admin URL recorded for the other members", "admin_url", want)
		return true, nil
	})
}

// Members reads the members the metadata shard records, from this
// member's store (what it has applied); none without a metadata shard.
func (c *Cluster) Members() (map[uint64]MemberRecord, error) {
	if c.meta == nil {
		return map[uint64]MemberRecord{}, nil
	}
	return readMembers(c.cfg.DB)
}
