package cli

import (
	"strings"
	"testing"

	"github.com/webhookops/webhookops/admin/api"
)

// TestClusterTablesShowMetadata: cluster status prints the metadata
// shard's leader, applied index, replicas, the members it records and the
// sealing key id; "none" while it has no leader; no line on a status
// without it.
func TestClusterTablesShowMetadata(t *testing.T) {
	st := api.ClusterStatus{NodeID: 2, Nodes: []api.ClusterNode{
		{ID: 1, Address: "10.0.0.1:7101", Reachable: true, Recorded: true, AdminURL: "https://10.0.0.1:8443"},
		{ID: 2, Address: "10.0.0.2:7101", Reachable: true, Recorded: true},
		{ID: 3, Address: "10.0.0.3:7101"},
	}, Metadata: &api.ClusterMetadata{Replicas: []uint64{1, 2, 3}, Leader: 1, Term: 4, AppliedIndex: 99, SealKeyID: "0a1b2c3d4e5f6071"}}
	for _, tc := range []struct {
		leader uint64
		want   string
	}{
		{1, "metadata shard: leader 1, term 4, applied 99, replicas [1 2 3]; recorded members [1 2]; sealing key id 0a1b2c3d4e5f6071"},
		{0, "metadata shard: leader none,"},
	} {
		st.Metadata.Leader = tc.leader
		var b strings.Builder
		if err := clusterTables(&b, st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("cluster status lacks %q:\n%s", tc.want, b.String())
		}
	}
	var b strings.Builder
	if err := clusterTables(&b, st); err != nil || !strings.Contains(b.String(), "ADMIN URL") || !strings.Contains(b.String(), "https://10.0.0.1:8443") {
		t.Fatalf("cluster status lacks member 1's admin URL: %v\n%s", err, b.String())
	}
	st.Metadata = nil
	b.Reset()
	if err := clusterTables(&b, st); err != nil || strings.Contains(b.String(), "metadata") {
		t.Fatalf("a status without a metadata shard: %v\n%s", err, b.String())
	}
}

// The LAG column names the member furthest behind in each partition; -
// when no member's index is known; the members left out are named.
func TestClusterTablesShowLag(t *testing.T) {
	st := api.ClusterStatus{NodeID: 1, Partitions: []api.ClusterPartition{
		{Partition: 0, Applied: []api.ReplicaApplied{{Node: 1, AppliedIndex: 9}, {Node: 2, AppliedIndex: 9}}},
		{Partition: 1, Applied: []api.ReplicaApplied{{Node: 1, AppliedIndex: 9, Lag: 3}, {Node: 2, AppliedIndex: 2, Lag: 10}}},
		{Partition: 2},
	}, LagUnknown: []uint64{3}}
	var b strings.Builder
	if err := clusterTables(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"LAG", "10 (node 2)", "LAG leaves out members [3]"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster status lacks %q:\n%s", want, out)
		}
	}
	if got := []string{worstLag(st.Partitions[0].Applied), worstLag(nil)}; got[0] != "0" || got[1] != "-" {
		t.Errorf("worstLag: %q", got)
	}
}
