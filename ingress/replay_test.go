package ingress

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal/model"
)

// A captured signed request sent again with a new delivery id, or with its
// Standard Webhooks signature turned into a plain one, must not become a
// new event (issue 9, item 4).
func TestCapturedRequestsDoNotReplay(t *testing.T) {
	e := newEnv(t)
	s := string(secret)
	err := e.node.Apply(actors.Change{Sources: []model.Source{
		{Slug: "gh", Provider: model.ProviderGitHub, Secrets: []string{s}},
		{Slug: "shop", Provider: model.ProviderShopify, Secrets: []string{s}},
		{Slug: "plain", Provider: model.ProviderGeneric, Secrets: []string{s}, Dedupe: model.DedupeBody},
		{Slug: "plain-ids", Provider: model.ProviderGeneric, Secrets: []string{s}, Dedupe: model.DedupeID},
		{Slug: "gh-ids", Provider: model.ProviderGitHub, Secrets: []string{s}, Dedupe: model.DedupeID},
		{Slug: "std", Provider: model.ProviderStandardWebhooks, Secrets: []string{s}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"action":"opened","number":7}`)
	now := time.Now()
	std := verify.SignStandard(secret, "msg_1", now, body)
	stdTurnedPlain := []byte("msg_1." + jsonNum(now.Unix()) + "." + string(body))
	steps := []struct {
		name   string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		dup    bool
	}{
		{"github first", "/in/gh", body, map[string]string{"X-Hub-Signature-256": verify.SignGitHub(secret, body), "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "issues"}, 202, false},
		{"github same body, new delivery id", "/in/gh", body, map[string]string{"X-Hub-Signature-256": verify.SignGitHub(secret, body), "X-GitHub-Delivery": "d-2", "X-GitHub-Event": "issues"}, 200, true},
		{"github opted out of body dedupe: a new id is a new event", "/in/gh-ids", body, map[string]string{"X-Hub-Signature-256": verify.SignGitHub(secret, body), "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "issues"}, 202, false},
		{"github opted out, second id", "/in/gh-ids", body, map[string]string{"X-Hub-Signature-256": verify.SignGitHub(secret, body), "X-GitHub-Delivery": "d-2", "X-GitHub-Event": "issues"}, 202, false},
		{"shopify create", "/in/shop", body, map[string]string{"X-Shopify-Hmac-Sha256": verify.SignShopify(secret, body), "X-Shopify-Webhook-Id": "w-1", "X-Shopify-Topic": "orders/create"}, 202, false},
		{"shopify same body, other topic: another event", "/in/shop", body, map[string]string{"X-Shopify-Hmac-Sha256": verify.SignShopify(secret, body), "X-Shopify-Webhook-Id": "w-2", "X-Shopify-Topic": "orders/paid"}, 202, false},
		{"shopify replayed with a new id", "/in/shop", body, map[string]string{"X-Shopify-Hmac-Sha256": verify.SignShopify(secret, body), "X-Shopify-Webhook-Id": "w-3", "X-Shopify-Topic": "orders/create"}, 200, true},
		{"generic with dedupe: body", "/in/plain", body, map[string]string{"X-Webhookops-Signature": verify.SignGeneric(secret, body), "X-Webhook-Id": "a"}, 202, false},
		{"generic with dedupe: body, new id", "/in/plain", body, map[string]string{"X-Webhookops-Signature": verify.SignGeneric(secret, body), "X-Webhook-Id": "b"}, 200, true},
		{"generic with dedupe: id, new id", "/in/plain-ids", body, map[string]string{"X-Webhookops-Signature": verify.SignGeneric(secret, body), "X-Webhook-Id": "b"}, 202, false},
		{"standard webhooks", "/in/std", body, map[string]string{"webhook-id": "msg_1", "webhook-timestamp": jsonNum(now.Unix()), "webhook-signature": std}, 202, false},
		{"standard webhooks turned plain, to a standard source", "/in/std", stdTurnedPlain, map[string]string{"X-Webhookops-Signature": "sha256=" + b64ToHex(t, std[3:])}, 401, false},
		{"standard webhooks to a generic source", "/in/plain-ids", body, map[string]string{"webhook-id": "msg_1", "webhook-timestamp": jsonNum(now.Unix()), "webhook-signature": std}, 401, false},
	}
	for _, st := range steps {
		rec := post(e.h, st.path, st.body, st.hdr)
		var r response
		json.Unmarshal(rec.Body.Bytes(), &r)
		if rec.Code != st.status || r.Duplicate != st.dup {
			t.Fatalf("%s: %d %s, want %d duplicate=%v", st.name, rec.Code, rec.Body, st.status, st.dup)
		}
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func b64ToHex(t *testing.T, s string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(raw)
}
