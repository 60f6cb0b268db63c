package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/admin/api"
)

// fakeMembership records changes; id 3 is refused as a member's would be.
type fakeMembership struct {
	mu      sync.Mutex
	changes []string
}

func (f *fakeMembership) AddNode(_ context.Context, id uint64, addr string) error {
	if id == 3 {
		return fmt.Errorf("%w: node 3 was removed", ErrMembershipRefused)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, fmt.Sprintf("add %d %s", id, addr))
	return nil
}

func (f *fakeMembership) RemoveNode(_ context.Context, id uint64) error {
	if id == 9 {
		return fmt.Errorf("partition 2: timeout") // no quorum: not the caller's fault
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, fmt.Sprintf("remove %d", id))
	return nil
}

// Membership changes: admin tokens only, fields checked, refusals 400,
// other failures 503, each change audited; a single node answers 404.
// Raft metrics per partition come from the member.
func TestClusterMembershipAPI(t *testing.T) {
	single := newEnv(t, envOpts{bootstrap: testToken})
	if code, _ := single.call("POST", "/api/v1/cluster/nodes", api.ClusterNodeRequest{ID: 4, Address: "127.0.0.1:7104"}, nil); code != http.StatusNotFound {
		t.Fatalf("add-node on a single node: %d", code)
	}

	f := &fakeMembership{}
	e := newEnv(t, envOpts{bootstrap: testToken, membership: f})
	for _, c := range []struct {
		method, path string
		body         any
		want         int
		field        string
	}{
		{"POST", "/api/v1/cluster/nodes", api.ClusterNodeRequest{ID: 4, Address: "127.0.0.1:7104"}, 200, ""},
		{"POST", "/api/v1/cluster/nodes", api.ClusterNodeRequest{Address: "127.0.0.1:7104"}, 400, "id"},
		{"POST", "/api/v1/cluster/nodes", api.ClusterNodeRequest{ID: 5}, 400, "address"},
		{"POST", "/api/v1/cluster/nodes", map[string]any{"id": 5, "address": "x:1", "extra": 1}, 400, ""},
		{"POST", "/api/v1/cluster/nodes", api.ClusterNodeRequest{ID: 3, Address: "127.0.0.1:7103"}, 400, ""},
		{"DELETE", "/api/v1/cluster/nodes/2", nil, 200, ""},
		{"DELETE", "/api/v1/cluster/nodes/0", nil, 400, ""},
		{"DELETE", "/api/v1/cluster/nodes/x", nil, 400, ""},
		{"DELETE", "/api/v1/cluster/nodes/9", nil, 503, ""},
	} {
		var out struct {
			Error struct {
				Field string `json:"field"`
			} `json:"error"`
		}
		code, raw := e.call(c.method, c.path, c.body, nil)
		json.Unmarshal(raw, &out)
		if code != c.want || (c.field != "" && out.Error.Field != c.field) {
			t.Errorf("%s %s %v: %d %s, want %d (field %q)", c.method, c.path, c.body, code, raw, c.want, c.field)
		}
	}
	if want := []string{"add 4 127.0.0.1:7104", "remove 2"}; fmt.Sprint(f.changes) != fmt.Sprint(want) {
		t.Fatalf("changes made: %v, want %v", f.changes, want)
	}
	var audit struct {
		Items []struct {
			Action   string `json:"action"`
			ObjectID string `json:"object_id"`
		} `json:"items"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/audit?object_type=node", nil, &audit)
	if len(audit.Items) != 2 || audit.Items[0].Action != "cluster.node_removed" || audit.Items[1].Action != "cluster.node_added" || audit.Items[1].ObjectID != "4" {
		t.Fatalf("audit of membership changes: %+v", audit.Items)
	}
	_, raw := e.call("GET", "/metrics", nil, nil)
	for _, want := range []string{
		`webhookops_cluster_leader{partition="3"} 2`,
		`webhookops_cluster_term{partition="3"} 7`,
		`webhookops_cluster_applied_index{partition="3"} 42`,
		`webhookops_cluster_delivering{partition="3"} 1`,
		`webhookops_cluster_metadata_leader 3`,
		`webhookops_cluster_metadata_term 5`,
		`webhookops_cluster_metadata_applied_index 17`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestApplyLag(t *testing.T) {
	parts := []api.ClusterPartition{{Partition: 0}, {Partition: 1}, {Partition: 2}}
	views := map[uint64][]api.ClusterPartition{
		1: {{Partition: 0, AppliedIndex: 10}, {Partition: 1, AppliedIndex: 5}, {Partition: 2, AppliedIndex: 7}},
		2: {{Partition: 0, AppliedIndex: 10}, {Partition: 1, AppliedIndex: 9}},
		3: {{Partition: 1, AppliedIndex: 2}, {Partition: 0, AppliedIndex: 4}},
	}
	applyLag(parts, views)
	want := [][]api.ReplicaApplied{
		{{Node: 1, AppliedIndex: 10}, {Node: 2, AppliedIndex: 10}, {Node: 3, AppliedIndex: 4, Lag: 6}},
		{{Node: 1, AppliedIndex: 5, Lag: 4}, {Node: 2, AppliedIndex: 9}, {Node: 3, AppliedIndex: 2, Lag: 7}},
		{{Node: 1, AppliedIndex: 7}}, // only member 1 reported partition 2
	}
	for i, p := range parts {
		if fmt.Sprint(p.Applied) != fmt.Sprint(want[i]) {
			t.Errorf("partition %d: %+v, want %+v", p.Partition, p.Applied, want[i])
		}
	}
}

// GET /api/v1/cluster asks the other members for their applied indexes,
// with the caller's token, and says which did not answer; ?local=true
// (what members ask each other) answers this member's view alone.
func TestClusterStatusShowsLag(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	member2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.String()+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		json.NewEncoder(w).Encode(api.ClusterStatus{NodeID: 2, Partitions: []api.ClusterPartition{{Partition: 0, AppliedIndex: 50}, {Partition: 1, AppliedIndex: 8}}})
	}))
	defer member2.Close()
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // answers after the status stopped waiting
		case <-r.Context().Done():
		case <-time.After(3 * statusWait):
		}
	}))
	defer silent.Close()
	status := func(context.Context) (api.ClusterStatus, error) {
		return api.ClusterStatus{NodeID: 1,
			Nodes:      []api.ClusterNode{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4}},
			Partitions: []api.ClusterPartition{{Partition: 0, AppliedIndex: 42}, {Partition: 1, AppliedIndex: 8}}}, nil
	}
	e := newEnv(t, envOpts{bootstrap: testToken, membership: &fakeMembership{}, cluster: status,
		peers: &Peers{Self: 1, URLs: map[uint64]string{2: member2.URL, 3: silent.URL}}}) // 4: not known

	var st api.ClusterStatus
	if code, raw := e.call("GET", "/api/v1/cluster", nil, &st); code != http.StatusOK {
		t.Fatalf("status: %d %s", code, raw)
	}
	want := [][]api.ReplicaApplied{
		{{Node: 1, AppliedIndex: 42, Lag: 8}, {Node: 2, AppliedIndex: 50}},
		{{Node: 1, AppliedIndex: 8}, {Node: 2, AppliedIndex: 8}},
	}
	for i, p := range st.Partitions {
		if fmt.Sprint(p.Applied) != fmt.Sprint(want[i]) {
			t.Errorf("partition %d applied %+v, want %+v", p.Partition, p.Applied, want[i])
		}
	}
	if fmt.Sprint(st.LagUnknown) != "[3 4]" {
		t.Errorf("lag unknown for %v, want [3 4]", st.LagUnknown)
	}
	mu.Lock()
	if len(asked) != 1 || asked[0] != "/api/v1/cluster?local=true Bearer "+testToken {
		t.Errorf("member 2 was asked %q", asked)
	}
	mu.Unlock()

	var local api.ClusterStatus
	if code, raw := e.call("GET", "/api/v1/cluster?local=true", nil, &local); code != http.StatusOK || local.Partitions[0].Applied != nil || local.LagUnknown != nil {
		t.Fatalf("local status: %d %s", code, raw)
	}
}

// A 503 (a member without a metadata quorum answers ErrUnavailable) says
// when to come back; other errors do not.
func TestUnavailableSaysRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: the metadata shard: timeout", actors.ErrUnavailable), "1"},
		{actors.ErrConflict, ""},
	} {
		w := httptest.NewRecorder()
		writeError(w, toError(tc.err))
		if got := w.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("%v: %d Retry-After %q, want %q", tc.err, w.Code, got, tc.want)
		}
	}
}
