package admin

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
)

var paramRE = regexp.MustCompile(`:[a-z_]+`)

// TestEveryRouteRefusesBadTokens walks the router's own list, so a route
// added later cannot skip authentication.
func TestEveryRouteRefusesBadTokens(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	var ro CreatedToken
	e.must(http.StatusCreated, "POST", "/api/v1/tokens", map[string]any{"name": "viewer", "role": "read"}, &ro)

	routes := e.adm.Routes()
	if len(routes) < 30 {
		t.Fatalf("only %d routes: the router list is incomplete", len(routes))
	}
	for _, rt := range routes {
		path := paramRE.ReplaceAllString(rt.Path, "x")
		if rt.Public {
			if rt.Path != "/healthz" && rt.Path != "/readyz" {
				t.Errorf("%s %s is public; only /healthz and /readyz may be", rt.Method, rt.Path)
			}
			continue
		}
		for _, tok := range []string{"", "whops_wrong", testToken + "x", strings.ToUpper(testToken)} {
			code, body := e.callAs(tok, rt.Method, path, nil, nil)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", rt.Method, path, tok, code)
			}
			var eb ErrorBody
			if json.Unmarshal(body, &eb) != nil || eb.Error == nil || eb.Error.Code != "unauthorized" {
				t.Errorf("%s %s: 401 body is not the error shape: %s", rt.Method, path, body)
			}
		}
		code, _ := e.callAs(ro.Secret, rt.Method, path, nil, nil)
		if rt.AdminOnly && code != http.StatusForbidden {
			t.Errorf("%s %s with a read-only token: %d, want 403", rt.Method, path, code)
		}
		if !rt.AdminOnly && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
			t.Errorf("%s %s with a read-only token: %d", rt.Method, path, code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := e.callAs("", "GET", p, nil, nil); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d", p, code)
		}
	}
	// Refusals are audited, tallied per token and reason.
	var page Page[wal.AuditEntry]
	eventually(t, 5*time.Second, "refusals audited", func() bool {
		e.must(http.StatusOK, "GET", "/api/v1/audit?action=auth.rejected&limit=5", nil, &page)
		return len(page.Items) > 0
	})
	if page.Items[0].Detail["reason"] == "" || page.Items[0].Detail["count"] == "" {
		t.Fatalf("refusal row: %+v", page.Items[0])
	}
}

func TestInitialTokenCreatedOnceAndRevocable(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, envOpts{dir: dir})
	if e.token == "" || !strings.HasPrefix(e.token, TokenPrefix) {
		t.Fatalf("no initial token: %q", e.token)
	}
	if again := e.adm.InitialToken(); again != "" {
		t.Fatal("the initial token is handed out twice")
	}
	var tokens Page[Token]
	e.must(http.StatusOK, "GET", "/api/v1/tokens", nil, &tokens)
	if len(tokens.Items) != 1 || tokens.Items[0].Name != InitialTokenName || tokens.Items[0].Hash != "" {
		t.Fatalf("tokens: %+v", tokens.Items)
	}
	var ct CreatedToken
	e.must(http.StatusCreated, "POST", "/api/v1/tokens", map[string]any{"name": "ci"}, &ct)
	e.must(http.StatusConflict, "POST", "/api/v1/tokens", map[string]any{"name": "ci"}, nil)
	if code, _ := e.callAs(ct.Secret, "GET", "/api/v1/sources", nil, nil); code != http.StatusOK {
		t.Fatalf("new token refused: %d", code)
	}
	e.must(http.StatusNoContent, "DELETE", "/api/v1/tokens/ci", nil, nil)
	if code, _ := e.callAs(ct.Secret, "GET", "/api/v1/sources", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("revoked token accepted: %d", code)
	}
	// Only the hash is stored.
	stored, err := ListTokens(e.db)
	if err != nil || len(stored) != 1 || strings.Contains(stored[0].Hash, e.token) || len(stored[0].Hash) != 64 {
		t.Fatalf("stored tokens: %+v %v", stored, err)
	}
}

func TestConfigCRUD(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)

	// Reads mask secrets.
	var src SourceOut
	raw := e.must(http.StatusOK, "GET", "/api/v1/sources/shop", nil, &src)
	if strings.Contains(string(raw), secret) || len(src.SecretIDs) != 1 {
		t.Fatalf("a read shows the secret: %s", raw)
	}
	var d DestinationOut
	raw = e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, &d)
	if d.Stats == nil || !strings.Contains(d.SigningSecret, "*") {
		t.Fatalf("destination read: %s", raw)
	}

	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"conflict", "POST", "/api/v1/sources", map[string]any{"slug": "shop", "provider": "generic"}, 409, "conflict", ""},
		{"unknown field", "POST", "/api/v1/destinations", map[string]any{"slug": "x", "url": "http://a", "max_inflight": 3}, 400, "unknown_field", "max_inflight"},
		{"bad slug", "POST", "/api/v1/sources", map[string]any{"slug": "Bad Slug", "provider": "generic"}, 400, "validation_failed", "slug"},
		{"bad provider", "POST", "/api/v1/sources", map[string]any{"slug": "s2", "provider": "paypal", "verify": "none"}, 400, "validation_failed", "provider"},
		{"bad url", "POST", "/api/v1/destinations", map[string]any{"slug": "d2", "url": "ftp://x"}, 400, "validation_failed", "url"},
		{"bad duration", "POST", "/api/v1/destinations", map[string]any{"slug": "d2", "url": "http://x", "timeout": "15"}, 400, "invalid_field", "timeout"},
		{"wrong type", "POST", "/api/v1/destinations", map[string]any{"slug": "d2", "url": "http://x", "max_attempts": "3"}, 400, "invalid_field", "max_attempts"},
		{"malformed", "POST", "/api/v1/sources", `{"slug":`, 400, "invalid_json", ""},
		{"unknown route target", "POST", "/api/v1/sources", map[string]any{"slug": "s3", "provider": "generic", "verify": "none", "routes": []any{map[string]any{"destination": "nope"}}}, 400, "validation_failed", "routes[0].destination"},
		{"missing", "GET", "/api/v1/sources/nope", nil, 404, "not_found", ""},
		{"in use", "DELETE", "/api/v1/destinations/app", nil, 409, "conflict", ""},
		{"secret by PUT", "PUT", "/api/v1/sources/shop", map[string]any{"provider": "generic", "secrets": []string{"new"}}, 400, "validation_failed", "secrets"},
		{"slug change", "PUT", "/api/v1/destinations/app", map[string]any{"slug": "other", "url": "http://x"}, 400, "validation_failed", "slug"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := auditCount(t, e)
			code, raw := e.call(c.method, c.path, c.body, nil)
			var eb ErrorBody
			if code != c.status || json.Unmarshal(raw, &eb) != nil || eb.Error == nil || eb.Error.Code != c.code || eb.Error.Field != c.field {
				t.Fatalf("%d %s, want %d %s field %q", code, raw, c.status, c.code, c.field)
			}
			if after := auditCount(t, e); after != before {
				t.Fatalf("a failed request wrote %d audit entries", after-before)
			}
		})
	}

	// Update through PUT of what GET showed (masked secrets) changes only
	// what differs, and is audited with the token's name.
	src.Routes = nil
	e.must(http.StatusOK, "PUT", "/api/v1/sources/shop", src.Source, nil)
	var got SourceOut
	e.must(http.StatusOK, "GET", "/api/v1/sources/shop", nil, &got)
	if len(got.Routes) != 0 || got.SecretIDs[0] != src.SecretIDs[0] {
		t.Fatalf("after PUT: %+v", got)
	}
	var page Page[wal.AuditEntry]
	e.must(http.StatusOK, "GET", "/api/v1/audit?action=config.updated&object_id=shop", nil, &page)
	if len(page.Items) != 1 || page.Items[0].Actor != "token:bootstrap" || page.Items[0].Detail["routes"] == "" {
		t.Fatalf("audit of the update: %+v", page.Items)
	}
	if strings.Contains(mustJSON(page.Items), secret) {
		t.Fatal("the audit log shows a secret")
	}
	e.must(http.StatusNoContent, "DELETE", "/api/v1/destinations/app", nil, nil)
	e.must(http.StatusNoContent, "DELETE", "/api/v1/sources/shop", nil, nil)
	e.must(http.StatusNotFound, "GET", "/api/v1/destinations/app", nil, nil)

	// Agents: the secret shows at creation only.
	var a AgentOut
	e.must(http.StatusCreated, "POST", "/api/v1/agents", map[string]any{"id": "office", "allowed_targets": []string{"10.0.0.5:8080"}}, &a)
	if a.Secret == "" || a.EnrollCommand != "agentd join --tunnel gw.example:7443 --id office --secret "+a.Secret+" --server-fingerprint sha256:abcd --allow 10.0.0.5:8080" {
		t.Fatalf("agent creation: %+v", a)
	}
	raw = e.must(http.StatusOK, "GET", "/api/v1/agents/office", nil, nil)
	if strings.Contains(string(raw), a.Secret) || strings.Contains(string(raw), `"secret"`) {
		t.Fatalf("agent read shows its secret: %s", raw)
	}
	e.must(http.StatusOK, "PUT", "/api/v1/agents/office", map[string]any{"allowed_targets": []string{"10.0.0.6:80"}}, nil)
	e.must(http.StatusNoContent, "DELETE", "/api/v1/agents/office", nil, nil)
}

func auditCount(t *testing.T, e *env) int {
	t.Helper()
	time.Sleep(20 * time.Millisecond) // audit writes of refusals are not waited for
	items, _, err := e.db.ListAudit(0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestIngestFindAndAttempts(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "order-1", `{"order":1}`)
	e.ingest("shop", secret, "order-2", `{"order":2}`)

	eventually(t, 10*time.Second, "delivery", func() bool { return e.event(id).Status == EventDelivered })

	var page Page[EventOut]
	e.must(http.StatusOK, "GET", "/api/v1/events?source=shop&idempotency_key=order-1", nil, &page)
	if len(page.Items) != 1 || page.Items[0].ID != id || page.NextCursor != "" {
		t.Fatalf("filter by key: %+v", page)
	}
	e.must(http.StatusOK, "GET", "/api/v1/events?destination=app&status=delivered&event_type=order.*", nil, &page)
	if len(page.Items) < 1 {
		t.Fatalf("filter by status: %+v", page)
	}
	e.must(http.StatusOK, "GET", "/api/v1/events?status=dead_lettered", nil, &page)
	if len(page.Items) != 0 {
		t.Fatalf("no event is dead: %+v", page)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	e.must(http.StatusOK, "GET", "/api/v1/events?since="+future, nil, &page)
	if len(page.Items) != 0 {
		t.Fatalf("since the future: %+v", page)
	}
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	e.must(http.StatusOK, "GET", "/api/v1/events?since="+past+"&until="+future, nil, &page)
	if len(page.Items) != 2 {
		t.Fatalf("within a time range: %+v", page)
	}
	e.must(http.StatusBadRequest, "GET", "/api/v1/events?status=weird", nil, nil)
	e.must(http.StatusBadRequest, "GET", "/api/v1/events?colour=red", nil, nil)

	ev := e.event(id)
	if ev.Body != `{"order":1}` || ev.BodyEncoding != "utf8" || len(ev.Headers) == 0 || ev.EventType != "order.created" {
		t.Fatalf("event detail: %+v", ev)
	}
	if len(ev.Deliveries) != 1 || len(ev.Deliveries[0].Attempts) != 1 {
		t.Fatalf("deliveries: %+v", ev.Deliveries)
	}
	at := ev.Deliveries[0].Attempts[0]
	if at.StatusCode != 200 || at.At.IsZero() || at.DurationMS <= 0 {
		t.Fatalf("attempt: %+v", at)
	}
	e.must(http.StatusNotFound, "GET", "/api/v1/events/evt_00000000000000000099", nil, nil)
}
