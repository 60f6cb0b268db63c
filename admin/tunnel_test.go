package admin

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal"
)

// TestEnrollment: one call creates an agent or rotates its secret, and
// answers the agentd command line with its parts.
func TestEnrollment(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})

	var first Enrollment
	e.must(http.StatusCreated, "POST", "/api/v1/agents/office/enrollment", map[string]any{"allowed_targets": []string{"10.0.0.5:8080", "db.internal:5432"}}, &first)
	want := "agentd join --tunnel gw.example:7443 --id office --secret " + first.Secret +
		" --server-fingerprint sha256:abcd --allow 10.0.0.5:8080 --allow db.internal:5432"
	if !first.Created || first.Secret == "" || first.Command != want || first.Tunnel != "gw.example:7443" ||
		first.ID != "office" || first.ServerFingerprint != "sha256:abcd" || strings.Join(first.AllowedTargets, ",") != "10.0.0.5:8080,db.internal:5432" {
		t.Fatalf("first enrollment: %+v\nwant command %s", first, want)
	}
	raw := e.must(http.StatusOK, "GET", "/api/v1/agents/office", nil, nil)
	if strings.Contains(string(raw), first.Secret) {
		t.Fatalf("agent read shows its secret: %s", raw)
	}

	// Again, without a body: a new secret, the allowed targets kept.
	var second Enrollment
	e.must(http.StatusCreated, "POST", "/api/v1/agents/office/enrollment", nil, &second)
	if second.Created || second.Secret == "" || second.Secret == first.Secret || len(second.AllowedTargets) != 2 || !strings.Contains(second.Command, "--secret "+second.Secret+" ") {
		t.Fatalf("re-enrollment: %+v", second)
	}
	if got := e.node.Snapshot().Agents["office"].Secret; got != second.Secret {
		t.Fatalf("stored secret is not the rotated one")
	}
	// With an empty list: the targets are replaced.
	var third Enrollment
	e.must(http.StatusCreated, "POST", "/api/v1/agents/office/enrollment", `{"allowed_targets": []}`, &third)
	if len(third.AllowedTargets) != 0 || strings.Contains(third.Command, "--allow") {
		t.Fatalf("enrollment with no targets: %+v", third)
	}

	// Audited, secrets masked.
	var page Page[wal.AuditEntry]
	e.must(http.StatusOK, "GET", "/api/v1/audit?object_type=agent&object_id=office", nil, &page)
	actions := map[string]int{}
	for _, it := range page.Items {
		actions[it.Action]++
		if it.Actor != "token:bootstrap" {
			t.Errorf("audit actor %q", it.Actor)
		}
	}
	if actions["config.created"] != 1 || actions["config.updated"] != 2 || actions["secret.rotated"] != 2 {
		t.Fatalf("audit actions: %v", actions)
	}
	for _, s := range []string{first.Secret, second.Secret, third.Secret} {
		if strings.Contains(mustJSON(page.Items), s) {
			t.Fatal("the audit log shows an agent secret")
		}
	}

	// POST /agents and POST /agents/{id}/secret answer the same command.
	var a AgentOut
	e.must(http.StatusCreated, "POST", "/api/v1/agents", map[string]any{"id": "lab"}, &a)
	if a.EnrollCommand != "agentd join --tunnel gw.example:7443 --id lab --secret "+a.Secret+" --server-fingerprint sha256:abcd" {
		t.Fatalf("agent creation command: %q", a.EnrollCommand)
	}
	e.must(http.StatusCreated, "POST", "/api/v1/agents/lab/secret", nil, &a)
	if !strings.Contains(a.EnrollCommand, "--secret "+a.Secret+" ") {
		t.Fatalf("rotation command: %q", a.EnrollCommand)
	}

	// Refusals name the field and change nothing.
	cases := []struct {
		path string
		body any
		code int
		want string // code or field
	}{
		{"/api/v1/agents/office/enrollment", `{"allowed_targets": ["ok:1"], "secret": "mine"}`, 400, "secret"},
		{"/api/v1/agents/office/enrollment", `{"allowed_targets": ["nope"]}`, 400, "allowed_targets[0]"},
		{"/api/v1/agents/office/enrollment", `{"allowed_targets": "x:1"}`, 400, "allowed_targets"},
		{"/api/v1/agents/Bad%20Id/enrollment", nil, 400, "id"},
	}
	before := e.node.Snapshot().Agents["office"]
	for _, c := range cases {
		code, raw := e.call("POST", c.path, c.body, nil)
		var eb ErrorBody
		json.Unmarshal(raw, &eb)
		if code != c.code || eb.Error == nil || eb.Error.Field != c.want {
			t.Errorf("POST %s %v: %d %s, want %d naming %q", c.path, c.body, code, raw, c.code, c.want)
		}
	}
	if after := e.node.Snapshot().Agents["office"]; after.Secret != before.Secret {
		t.Fatal("a refused enrollment rotated the secret")
	}
	if code, _ := e.callAs("", "POST", "/api/v1/agents/office/enrollment", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("enrollment without a token: %d", code)
	}
}

func TestEnrollmentNeedsTheTunnel(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken, noTunnel: true})
	code, raw := e.call("POST", "/api/v1/agents/office/enrollment", nil, nil)
	var eb ErrorBody
	json.Unmarshal(raw, &eb)
	if code != http.StatusConflict || eb.Error == nil || !strings.Contains(eb.Error.Message, "--tunnel-addr") {
		t.Fatalf("enrollment without a tunnel: %d %s", code, raw)
	}
	if _, ok := e.node.Snapshot().Agents["office"]; ok {
		t.Fatal("the refused enrollment created the agent")
	}
	e.must(http.StatusCreated, "POST", "/api/v1/agents", map[string]any{"id": "office", "allowed_targets": []string{"10.0.0.1:80"}}, nil)
	code, raw = e.call("POST", "/api/v1/forwards", map[string]any{"listen": "127.0.0.1:1", "agent": "office", "target": "10.0.0.1:80"}, nil)
	if code != http.StatusConflict || !strings.Contains(string(raw), "--tunnel-addr") {
		t.Fatalf("forward without a tunnel: %d %s", code, raw)
	}
}

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestForwards(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	e.must(http.StatusCreated, "POST", "/api/v1/agents", map[string]any{"id": "dev", "allowed_targets": []string{"db.internal:5432"}}, nil)
	listen := freeTCP(t)

	var f ForwardOut
	e.must(http.StatusCreated, "POST", "/api/v1/forwards", map[string]any{"listen": listen, "agent": "dev", "target": "db.internal:5432"}, &f)
	if f.Listen != listen || f.Agent != "dev" || f.Target != "db.internal:5432" || f.AgentOnline {
		t.Fatalf("created: %+v", f)
	}
	var page Page[ForwardOut]
	e.must(http.StatusOK, "GET", "/api/v1/forwards", nil, &page)
	if len(page.Items) != 1 || page.Items[0].Forward != f.Forward {
		t.Fatalf("list: %+v", page)
	}
	var got ForwardOut
	e.must(http.StatusOK, "GET", "/api/v1/forwards/"+url.PathEscape(listen), nil, &got)
	if got.Forward != f.Forward {
		t.Fatalf("get: %+v", got)
	}
	// An escaped IPv6 listen address is one path segment.
	e.must(http.StatusNotFound, "GET", "/api/v1/forwards/"+url.PathEscape("[::1]:5432"), nil, nil)

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cases := []struct {
		name string
		body any
		code int
		want string // field, or "" for the conflict
	}{
		{"duplicate", map[string]any{"listen": listen, "agent": "dev", "target": "db.internal:5432"}, 409, ""},
		{"bad listen", map[string]any{"listen": "5432", "agent": "dev", "target": "db.internal:5432"}, 400, "listen"},
		{"bad target", map[string]any{"listen": "127.0.0.1:1", "agent": "dev", "target": "db"}, 400, "target"},
		{"unknown agent", map[string]any{"listen": freeTCP(t), "agent": "ghost", "target": "db.internal:5432"}, 400, "agent"},
		{"target not allowed", map[string]any{"listen": freeTCP(t), "agent": "dev", "target": "10.9.9.9:22"}, 400, "target"},
		{"beyond loopback without public", map[string]any{"listen": "0.0.0.0:1", "agent": "dev", "target": "db.internal:5432"}, 400, "listen"},
		{"empty host without public", map[string]any{"listen": ":1", "agent": "dev", "target": "db.internal:5432"}, 400, "listen"},
		{"address in use", map[string]any{"listen": taken.Addr().String(), "agent": "dev", "target": "db.internal:5432"}, 400, "listen"},
		{"unknown field", `{"listen": "127.0.0.1:1", "agent": "dev", "target": "db.internal:5432", "port": 1}`, 400, "port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, raw := e.call("POST", "/api/v1/forwards", c.body, nil)
			var eb ErrorBody
			json.Unmarshal(raw, &eb)
			if code != c.code || eb.Error == nil || eb.Error.Field != c.want {
				t.Fatalf("%d %s, want %d naming %q", code, raw, c.code, c.want)
			}
		})
	}
	if n := len(e.node.Snapshot().Forwards); n != 1 {
		t.Fatalf("refused creates left %d forwards", n)
	}

	// The agent cannot be deleted while the forward uses it.
	e.must(http.StatusConflict, "DELETE", "/api/v1/agents/dev", nil, nil)
	e.must(http.StatusNoContent, "DELETE", "/api/v1/forwards/"+url.PathEscape(listen), nil, nil)
	e.must(http.StatusNotFound, "DELETE", "/api/v1/forwards/"+url.PathEscape(listen), nil, nil)
	e.must(http.StatusNotFound, "GET", "/api/v1/forwards/"+url.PathEscape(listen), nil, nil)

	var audit Page[wal.AuditEntry]
	e.must(http.StatusOK, "GET", "/api/v1/audit?object_type=forward", nil, &audit)
	if len(audit.Items) != 2 || audit.Items[0].Action != "config.deleted" || audit.Items[1].Action != "config.created" || audit.Items[1].ObjectID != listen {
		t.Fatalf("forward audit: %+v", audit.Items)
	}
	e.must(http.StatusNoContent, "DELETE", "/api/v1/agents/dev", nil, nil)
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"gw.example:7443": "gw.example:7443",
		"[::1]:9700":      "'[::1]:9700'",
		"a b":             "'a b'",
		"it's":            `'it'\''s'`,
		"":                "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestAgentDestinationTargetChecked: an agent-mode destination whose URL's
// host:port the agent does not allow is refused at create and update with
// a 400 naming url (it used to fail only at delivery).
func TestAgentDestinationTargetChecked(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	e.must(http.StatusCreated, "POST", "/api/v1/agents", map[string]any{"id": "dev", "allowed_targets": []string{"billing.internal:443", "hooks.internal:8080"}}, nil)
	dest := func(u string) map[string]any {
		return map[string]any{"slug": "billing", "url": u, "mode": "agent", "agent": "dev"}
	}
	for _, u := range []string{"https://evil.internal/in", "http://billing.internal/in", "https://billing.internal:8443/in"} {
		code, raw := e.call("POST", "/api/v1/destinations", dest(u), nil)
		var eb ErrorBody
		json.Unmarshal(raw, &eb)
		if code != http.StatusBadRequest || eb.Error == nil || eb.Error.Field != "url" || !strings.Contains(eb.Error.Message, "allowed_targets") {
			t.Fatalf("create %s: %d %s, want 400 naming url", u, code, raw)
		}
	}
	if _, ok := e.node.Snapshot().Destinations["billing"]; ok {
		t.Fatal("a refused create stored the destination")
	}
	e.must(http.StatusCreated, "POST", "/api/v1/destinations", dest("https://BILLING.internal/in"), nil)
	e.must(http.StatusOK, "PUT", "/api/v1/destinations/billing", dest("http://hooks.internal:8080/in"), nil)
	code, raw := e.call("PUT", "/api/v1/destinations/billing", dest("http://hooks.internal:9090/in"), nil)
	var eb ErrorBody
	json.Unmarshal(raw, &eb)
	if code != http.StatusBadRequest || eb.Error == nil || eb.Error.Field != "url" {
		t.Fatalf("update to a target not allowed: %d %s", code, raw)
	}
	if got := e.node.Snapshot().Destinations["billing"].URL; got != "http://hooks.internal:8080/in" {
		t.Fatalf("refused update changed the url to %q", got)
	}
}

// TestTunnelMembers: on a cluster member, enrollment names every member's
// tunnel (one pin when they share a certificate, else one per tunnel in
// the same order), and agents and forwards show their state on each
// member as the tunnel directory holds it.
func TestTunnelMembers(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	var (
		mu      sync.Mutex // the directory is read on the server's goroutines
		members []TunnelMember
	)
	set := func(ms []TunnelMember) {
		mu.Lock()
		defer mu.Unlock()
		members = ms
	}
	e := newEnv(t, envOpts{bootstrap: testToken, membership: &fakeMembership{},
		tunnelMembers: func(context.Context) ([]TunnelMember, error) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(members), nil
		}})
	set([]TunnelMember{
		{Node: 3, Addr: "n3:7443", Fingerprint: "sha256:abcd", ReportedAt: at, Reachable: false,
			Sessions:  map[string]api.MemberSession{"office": {Online: true, Transport: "quic", Remote: "10.0.0.9:5000", Since: at}},
			Listeners: map[string]string{"127.0.0.1:5432": ""}},
		{Node: 1, Addr: "gw.example:7443", Fingerprint: "sha256:abcd", ReportedAt: at, Reachable: true,
			Listeners: map[string]string{"127.0.0.1:5432": "listen tcp 127.0.0.1:5432: bind: address already in use"}},
		{Node: 2, Addr: "n2:7443", Fingerprint: "sha256:abcd", ReportedAt: at, Reachable: true,
			Sessions: map[string]api.MemberSession{"office": {Online: true, Transport: "tcp", Since: at}}},
	})
	var enr Enrollment
	e.must(http.StatusCreated, "POST", "/api/v1/agents/office/enrollment", map[string]any{"allowed_targets": []string{"db.internal:5432"}}, &enr)
	want := "agentd join --tunnel gw.example:7443 --tunnel n2:7443 --tunnel n3:7443 --id office --secret " + enr.Secret +
		" --server-fingerprint sha256:abcd --allow db.internal:5432"
	if enr.Command != want || len(enr.Tunnels) != 3 || enr.Tunnels[2] != (api.TunnelEndpoint{Node: 3, Addr: "n3:7443", Fingerprint: "sha256:abcd"}) {
		t.Fatalf("enrollment with members sharing a certificate: %+v\nwant command %s", enr, want)
	}
	// Each member its own certificate; one not reported yet is not named,
	// but the answering member always is.
	set([]TunnelMember{{Node: 3, Addr: "n3:7443", Fingerprint: "sha256:03", ReportedAt: at}})
	e.must(http.StatusCreated, "POST", "/api/v1/agents/office/enrollment", nil, &enr)
	want = "agentd join --tunnel gw.example:7443 --tunnel n3:7443 --id office --secret " + enr.Secret +
		" --server-fingerprint sha256:abcd --server-fingerprint sha256:03 --allow db.internal:5432"
	if enr.Command != want {
		t.Fatalf("enrollment with a pin each:\n got %s\nwant %s", enr.Command, want)
	}

	listen := freeTCP(t)
	directory := func(on3 map[string]string) []TunnelMember {
		return []TunnelMember{
			{Node: 1, Addr: "gw.example:7443", Fingerprint: "sha256:abcd", ReportedAt: at, Reachable: true, Listeners: map[string]string{listen: ""}},
			{Node: 3, Addr: "n3:7443", Fingerprint: "sha256:03", ReportedAt: at, Reachable: false,
				Sessions:  map[string]api.MemberSession{"office": {Online: true, Transport: "quic", Remote: "10.0.0.9:5000", Since: at}},
				Listeners: on3},
		}
	}
	set(directory(map[string]string{listen: "listen tcp: address already in use"}))
	var a AgentOut
	e.must(http.StatusOK, "GET", "/api/v1/agents/office", nil, &a)
	wantSessions := []api.MemberSession{
		{Node: 1, Tunnel: "gw.example:7443", ReportedAt: at, Reachable: true},
		{Node: 3, Tunnel: "n3:7443", Online: true, Transport: "quic", Remote: "10.0.0.9:5000", Since: at, ReportedAt: at},
	}
	if !reflect.DeepEqual(a.Members, wantSessions) {
		t.Fatalf("agent members:\n got %+v\nwant %+v", a.Members, wantSessions)
	}

	var f ForwardOut
	e.must(http.StatusCreated, "POST", "/api/v1/forwards", map[string]any{"listen": listen, "agent": "office", "target": "db.internal:5432"}, &f)
	wantListeners := []api.MemberListener{
		{Node: 1, Listening: true, ReportedAt: at, Reachable: true},
		{Node: 3, Error: "listen tcp: address already in use", AgentOnline: true, ReportedAt: at},
	}
	var page Page[ForwardOut]
	e.must(http.StatusOK, "GET", "/api/v1/forwards", nil, &page)
	if len(page.Items) != 1 || !reflect.DeepEqual(page.Items[0].Members, wantListeners) || !reflect.DeepEqual(f.Members, wantListeners) {
		t.Fatalf("forward members:\n got %+v (created %+v)\nwant %+v", page.Items, f.Members, wantListeners)
	}
	// A member that has not started the forward yet says so.
	set(directory(map[string]string{}))
	var got ForwardOut
	e.must(http.StatusOK, "GET", "/api/v1/forwards/"+url.PathEscape(listen), nil, &got)
	if m := got.Members[1]; m.Listening || !strings.Contains(m.Error, "not started") {
		t.Fatalf("forward on a member without it: %+v", m)
	}
}
