package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

// Below the free-space floor /readyz fails with the reason and ingest
// answers 503 with Retry-After, storing nothing.
func TestLowDiskFailsReadyzAndIngest(t *testing.T) {
	e := newEnv(t, envOpts{minFree: 1 << 60}) // more than any disk has free
	defer e.stop()
	code, raw := e.callAs("", http.MethodGet, "/readyz", nil, nil)
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(raw, &eb)
	if code != http.StatusServiceUnavailable || eb.Error.Code != "storage_unavailable" || !strings.Contains(eb.Error.Message, "free space") {
		t.Fatalf("/readyz on a full disk: %d %s", code, raw)
	}
	e.must(http.StatusCreated, http.MethodPost, "/api/v1/sources", map[string]any{"slug": "s", "provider": "generic", "secrets": []string{"k"}}, nil)
	body := `{"a":1}`
	req, _ := http.NewRequest(http.MethodPost, e.in.URL+"/in/s", strings.NewReader(body))
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric([]byte("k"), []byte(body)))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("ingest on a full disk: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if evs, _, _ := e.db.ListEvents(0, 10, nil); len(evs) != 0 {
		t.Fatalf("%d events stored on a full disk", len(evs))
	}
}

// Event reads mask the signature: with the body it is a request anyone
// could send again.
func TestEventReadsMaskSignatures(t *testing.T) {
	e := newEnv(t, envOpts{})
	defer e.stop()
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "order-1", `{"order":1}`)
	raw := e.must(http.StatusOK, "GET", "/api/v1/events/"+id, nil, nil)
	sig := verify.SignGeneric([]byte(secret), []byte(`{"order":1}`))
	if strings.Contains(string(raw), sig[len("sha256="):]) {
		t.Fatalf("the event read shows its signature: %s", raw)
	}
	var ev EventOut
	json.Unmarshal(raw, &ev)
	found := false
	for _, h := range ev.Headers {
		if strings.EqualFold(h.Name, "X-Webhookops-Signature") {
			found = h.Value == "****"
		}
	}
	if !found {
		t.Fatalf("signature header not shown masked: %+v", ev.Headers)
	}
}

// Credentials in destination headers and the URL query are never shown:
// not to an admin token, not to a read-only one, not in audit diffs; a PUT
// of what a read showed keeps them; deliveries still carry them.
func TestDestinationCredentialsMasked(t *testing.T) {
	e := newEnv(t, envOpts{})
	defer e.stop()
	got := make(chan *http.Request, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r }))
	defer app.Close()
	secret := e.setup(&sink{srv: app}, map[string]any{"url": app.URL + "/hook?token=q-secret-1",
		"headers":        map[string]string{"Authorization": "Bearer auth-secret-1", "X-Vendor": "vendor-secret-1", "X-Team": "payments"},
		"secret_headers": []string{"X-Vendor"}})
	var ro CreatedToken
	e.must(http.StatusCreated, "POST", "/api/v1/tokens", map[string]any{"name": "viewer", "role": "read"}, &ro)

	plains := []string{"q-secret-1", "auth-secret-1", "vendor-secret-1"}
	noPlain := func(what string, raw []byte) {
		t.Helper()
		for _, p := range plains {
			if strings.Contains(string(raw), p) {
				t.Fatalf("%s shows %q: %s", what, p, raw)
			}
		}
	}
	raw := e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, nil)
	noPlain("an admin read", raw)
	if !strings.Contains(string(raw), `"X-Team":"payments"`) || !strings.Contains(string(raw), "token=****") {
		t.Fatalf("read: %s", raw)
	}
	_, raw = e.callAs(ro.Secret, "GET", "/api/v1/destinations", nil, nil)
	noPlain("a read-only list", raw)

	// PUT back what GET showed, changing only the team: the credentials stay.
	var d DestinationOut
	e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, &d)
	d.Headers["X-Team"] = "billing"
	d.SigningSecret = ""
	e.must(http.StatusOK, "PUT", "/api/v1/destinations/app", d.Destination, nil)
	// The audit diffs of the creation and the update (the action names
	// are config.created and config.updated).
	for _, action := range []string{"config.created", "config.updated"} {
		var audit Page[wal.AuditEntry]
		e.must(http.StatusOK, "GET", "/api/v1/audit?action="+action, nil, &audit)
		n := 0
		for _, it := range audit.Items {
			if it.ObjectType == "destination" && it.ObjectID == "app" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d %s entries for the destination, want 1: %+v", n, action, audit.Items)
		}
		raw, _ = json.Marshal(audit)
		noPlain("the audit log", raw)
	}

	e.ingest("shop", secret, "k1", `{"a":1}`)
	select {
	case r := <-got:
		if r.Header.Get("Authorization") != "Bearer auth-secret-1" || r.Header.Get("X-Vendor") != "vendor-secret-1" ||
			r.URL.Query().Get("token") != "q-secret-1" || r.Header.Get("X-Team") != "billing" {
			t.Fatalf("delivery lost its credentials: %v %v", r.URL, r.Header)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered")
	}
}

// Credentials changed behind their mask, and edits around it: neither the
// old nor the new value shows to a read-only token (destinations, audit
// log) while the audit diff still says that they changed; a PUT of what a
// read showed with the path and another query value edited keeps the
// masked query values; the mask itself is never taken as a value.
func TestDestinationCredentialsChangedBehindTheMask(t *testing.T) {
	e := newEnv(t, envOpts{})
	defer e.stop()
	const base = "https://app.example/hook"
	e.must(http.StatusCreated, "POST", "/api/v1/destinations", map[string]any{"slug": "app", "url": base + "?token=q-secret-1&x=1",
		"headers": map[string]string{"Authorization": "Bearer auth-secret-1", "X-Team": "payments"}}, nil)
	var ro CreatedToken
	e.must(http.StatusCreated, "POST", "/api/v1/tokens", map[string]any{"name": "viewer", "role": "read"}, &ro)

	// New credentials, set in clear by an admin.
	e.must(http.StatusOK, "PUT", "/api/v1/destinations/app", map[string]any{"slug": "app", "url": base + "?token=q-secret-2&x=1",
		"headers": map[string]string{"Authorization": "Bearer auth-secret-2", "X-Team": "payments"}}, nil)
	plains := []string{"q-secret-1", "auth-secret-1", "q-secret-2", "auth-secret-2"}
	for _, path := range []string{"/api/v1/destinations/app", "/api/v1/destinations", "/api/v1/audit?limit=100"} {
		code, raw := e.callAs(ro.Secret, "GET", path, nil, nil)
		for _, p := range plains {
			if code != http.StatusOK || strings.Contains(string(raw), p) {
				t.Fatalf("read-only GET %s: %d, shows %q: %s", path, code, p, raw)
			}
		}
	}
	var audit Page[wal.AuditEntry]
	e.must(http.StatusOK, "GET", "/api/v1/audit?action=config.updated", nil, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Detail["headers"] != "secret values changed" || audit.Items[0].Detail["url"] != "query values changed" {
		t.Fatalf("the audit diff should say the credentials changed: %+v", audit.Items)
	}

	// PUT what a read showed, with the path and x edited: token stays.
	var d DestinationOut
	e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, &d)
	if d.URL != base+"?token=****&x=****" || d.Headers["Authorization"] != "****" {
		t.Fatalf("read: %s %v", d.URL, d.Headers)
	}
	d.URL = strings.Replace(strings.Replace(d.URL, "/hook", "/hook2", 1), "x=****", "x=2", 1)
	d.SigningSecret = ""
	e.must(http.StatusOK, "PUT", "/api/v1/destinations/app", d.Destination, nil)
	got := e.node.Snapshot().Destinations["app"]
	if got.URL != "https://app.example/hook2?token=q-secret-2&x=2" || got.Headers["Authorization"] != "Bearer auth-secret-2" {
		t.Fatalf("after a PUT of an edited read: %s %v", got.URL, got.Headers)
	}

	// The mask where there is nothing behind it is refused, naming the field.
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"slug": "app", "url": base + "?token=q&extra=****", "headers": map[string]string{"Authorization": "Bearer a"}}, "url"},
		{map[string]any{"slug": "app", "url": base, "headers": map[string]string{"X-Api-Key": "****"}}, "headers"},
	} {
		code, raw := e.call("PUT", "/api/v1/destinations/app", tc.body, nil)
		var eb ErrorBody
		json.Unmarshal(raw, &eb)
		if code != http.StatusBadRequest || eb.Error == nil || eb.Error.Field != tc.field || !strings.Contains(eb.Error.Message, "****") {
			t.Fatalf("PUT %v: %d %s, want 400 naming %s", tc.body, code, raw, tc.field)
		}
	}
	if got2 := e.node.Snapshot().Destinations["app"]; got2.URL != got.URL {
		t.Fatalf("a refused PUT changed the URL to %s", got2.URL)
	}
}
