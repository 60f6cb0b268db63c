package api

// ClusterStatus is GET /api/v1/cluster: the cluster as the answering node
// sees it.
type ClusterStatus struct {
	// NodeID is the node that answered.
	NodeID     uint64             `json:"node_id"`
	Nodes      []ClusterNode      `json:"nodes"`
	Partitions []ClusterPartition `json:"partitions"`
	// Metadata is the metadata shard (configuration, tokens, member
	// records) as the answering node sees it.
	Metadata *ClusterMetadata `json:"metadata,omitempty"`
	// LagUnknown lists the members the answering node asked for their
	// applied indexes (see ClusterPartition.Applied) that did not answer
	// within a second, or whose admin API it does not know.
	LagUnknown []uint64 `json:"lag_unknown,omitempty"`
}

// ReplicaApplied is how far one member has applied a partition's log.
type ReplicaApplied struct {
	Node         uint64 `json:"node"`
	AppliedIndex uint64 `json:"applied_index"`
	// Lag is how many entries it is behind the member furthest ahead.
	Lag uint64 `json:"lag"`
}

// ClusterMetadata is the metadata shard: while it has no leader,
// configuration changes and token writes answer 503.
type ClusterMetadata struct {
	Replicas     []uint64 `json:"replicas"`
	Leader       uint64   `json:"leader"` // 0: none known
	Term         uint64   `json:"term"`
	AppliedIndex uint64   `json:"applied_index"`
	// SealKeyID names the cluster sealing key the answering node seals
	// with (a hash of it, not the key).
	SealKeyID string `json:"seal_key_id"`
}

// ClusterNode is one member.
type ClusterNode struct {
	ID      uint64 `json:"id"`
	Address string `json:"address"`
	// Reachable: the answering node could open a connection to the
	// member's raft address just now (itself: always).
	Reachable bool `json:"reachable"`
	// Leads is how many partitions the member leads, as the answering node
	// last heard.
	Leads int `json:"leads"`
	// Tunnel is where agents dial the member's tunnel, as it reported
	// it; empty when it runs none or has not reported yet.
	Tunnel string `json:"tunnel,omitempty"`
	// Recorded: the metadata shard records the node as a member (an
	// initial member, or one added with add-node and not removed since).
	Recorded bool `json:"recorded"`
	// AdminURL is the admin API URL the member recorded for the others
	// (where a replay of a destination it delivers is forwarded); empty
	// when it recorded none.
	AdminURL string `json:"admin_url,omitempty"`
}

// ClusterPartition is one replicated partition.
type ClusterPartition struct {
	Partition uint16   `json:"partition"`
	Replicas  []uint64 `json:"replicas"`
	Leader    uint64   `json:"leader"` // 0: none known (an election is running)
	Term      uint64   `json:"term"`
	// Owner is the node whose takeover entry was last applied here, in
	// OwnerTerm: the only node whose writes the partition accepts.
	Owner     uint64 `json:"owner"`
	OwnerTerm uint64 `json:"owner_term"`
	// AppliedIndex is the last raft entry the answering node applied.
	AppliedIndex uint64 `json:"applied_index"`
	// Destinations are the configured destinations whose queues live in
	// the partition: its leader delivers them.
	Destinations []string `json:"destinations"`
	// Delivering: the answering node delivers the partition's
	// destinations now (it owns the partition and holds its lease).
	Delivering bool `json:"delivering"`
	// Applied is each member's applied index and lag, asked of the
	// members through their admin APIs (absent with ?local=true, and
	// without serve's peers; members that did not answer are left out).
	Applied []ReplicaApplied `json:"applied,omitempty"`
}

// ClusterNodeRequest is POST /api/v1/cluster/nodes: add a member (a
// replacement for a removed one takes a new id).
type ClusterNodeRequest struct {
	ID      uint64 `json:"id"`
	Address string `json:"address"` // host:port of its raft transport (--cluster-addr)
}
