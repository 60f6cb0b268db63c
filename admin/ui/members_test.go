package ui

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/admin/internal/testnode"
)

// TestClusterMembersShown: on a cluster member, the agents page shows the
// agent's session on each member and the forwards page each member's
// listener; a member the answering one cannot reach is marked. A single
// node's pages show neither (TestPages and the browser tests).
func TestClusterMembersShown(t *testing.T) {
	at := time.Now().Add(-time.Minute)
	listen := testnode.FreeAddr(t)
	e := startNode(t, nodeOpts{tunnelMembers: func(context.Context) ([]admin.TunnelMember, error) {
		return []admin.TunnelMember{
			{Node: 1, Addr: "gw.example:9700", ReportedAt: at, Reachable: true,
				Sessions:  map[string]api.MemberSession{"nas": {Online: true}},
				Listeners: map[string]string{listen: ""}},
			{Node: 2, Addr: "n2.example:9700", ReportedAt: at, Reachable: false,
				Listeners: map[string]string{listen: "listen tcp: address already in use"}},
		}, nil
	}})
	e.api("POST", "/api/v1/agents", map[string]any{"id": "nas", "allowed_targets": []string{"10.0.0.5:22"}}, nil, http.StatusCreated)
	e.api("POST", "/api/v1/forwards", map[string]any{"listen": listen, "agent": "nas", "target": "10.0.0.5:22"}, nil, http.StatusCreated)
	b := e.newBrowser()
	b.login(adminToken)

	page := b.get("/ui/agents")
	for _, want := range []string{">1: in session</span>", ">2: no session?</span>", "node 2 (n2.example:9700), unreachable now"} {
		if page.status != 200 || !strings.Contains(page.body, want) {
			t.Fatalf("agents page lacks %q: %d\n%s", want, page.status, page.body)
		}
	}
	page = b.get("/ui/forwards")
	for _, want := range []string{">1: listening</span>", ">2: not listening?</span>", "node 2: listen tcp: address already in use"} {
		if page.status != 200 || !strings.Contains(page.body, want) {
			t.Fatalf("forwards page lacks %q: %d\n%s", want, page.status, page.body)
		}
	}
}
