package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

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
