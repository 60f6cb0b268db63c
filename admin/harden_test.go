package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/ingress/verify"
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
