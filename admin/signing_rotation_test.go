package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors/delivery"
)

// TestSigningSecretRotationOverlap: after a destination's signing secret is
// rotated, deliveries carry signatures by both the new and the previous
// secret, so a receiver can switch; the previous secret never shows in
// clear in an API read or the audit log.
func TestSigningSecretRotationOverlap(t *testing.T) {
	type got struct {
		id, ts, sig string
		body        []byte
	}
	hits := make(chan got, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- got{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), b}
	}))
	defer app.Close()
	e := newEnv(t, envOpts{})
	var created DestinationOut
	e.must(http.StatusCreated, "POST", "/api/v1/destinations", map[string]any{
		"slug": "app", "url": app.URL + "/hook", "allow_private_network": true,
	}, &created)
	old := created.SigningSecret
	var src SourceOut
	e.must(http.StatusCreated, "POST", "/api/v1/sources", map[string]any{
		"slug": "shop", "provider": "generic", "routes": []map[string]any{{"destination": "app"}},
	}, &src)

	var rot SecretRotation
	e.must(http.StatusCreated, "POST", "/api/v1/destinations/app/signing-secret", nil, &rot)
	if rot.Secret == "" || rot.Secret == old {
		t.Fatalf("rotation answered %+v", rot)
	}
	var read DestinationOut
	raw := e.must(http.StatusOK, "GET", "/api/v1/destinations/app", nil, &read)
	if strings.Contains(string(raw), old) || strings.Contains(string(raw), rot.Secret) || read.PreviousSigningSecret == "" {
		t.Fatalf("destination read shows a secret in clear or lost the previous one: %s", raw)
	}

	e.ingest("shop", src.Secrets[0], "k1", `{"x":1}`)
	var h got
	select {
	case h = <-hits:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered")
	}
	sec, _ := strconv.ParseInt(h.ts, 10, 64)
	ts := time.Unix(sec, 0)
	want := delivery.Sign(rot.Secret, h.id, ts, h.body) + " " + delivery.Sign(old, h.id, ts, h.body)
	if h.sig != want {
		t.Fatalf("webhook-signature %q, want the new and the previous secret's: %q", h.sig, want)
	}
	audit := e.must(http.StatusOK, "GET", "/api/v1/audit?limit=200", nil, nil)
	if strings.Contains(string(audit), old) || strings.Contains(string(audit), rot.Secret) {
		t.Fatal("a signing secret is in clear in the audit log")
	}
}
