package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/webhookops/webhookops/wal/model"
)

// stripeEvent is a trimmed real Stripe event: nested objects carry their own
// "id" and "type", which must not be mistaken for the event's.
const stripeEvent = `{
  "object": "event",
  "data": {
    "object": {
      "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
      "object": "payment_intent",
      "amount": 2000,
      "currency": "usd",
      "payment_method_types": ["card"],
      "metadata": {"type": "not-this", "id": "nor-this"},
      "status": "succeeded"
    },
    "previous_attributes": {"status": "processing"}
  },
  "api_version": "2022-11-15",
  "created": 1680064028,
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_xyz", "idempotency_key": "0b7a3c7e"},
  "id": "evt_3MtwBwLkdIwHu7ix0ZwNcGJ8",
  "type": "payment_intent.succeeded"
}`

const slackEvent = `{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456",
 "event":{"type":"app_mention","user":"U123","text":"hi","ts":"1515449522.000016","channel":"C123","event_ts":"1515449522000016"},
 "type":"event_callback","event_id":"Ev123ABC456","event_time":1515449522000016}`

func hashKey(body string) string {
	s := sha256.Sum256([]byte(body))
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestExtract(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
	exact := strings.Repeat("k", MaxKeyLen)
	for _, tc := range []struct {
		name     string
		provider model.Provider
		h        http.Header
		body     string
		key, typ string
	}{
		{"stripe", "stripe", nil, stripeEvent, "evt_3MtwBwLkdIwHu7ix0ZwNcGJ8", "payment_intent.succeeded"},
		{"stripe no id", "stripe", nil, `{"type":"charge.failed"}`, hashKey(`{"type":"charge.failed"}`), "charge.failed"},
		{"stripe id of wrong type", "stripe", nil, `{"id":12,"type":"charge.failed"}`, hashKey(`{"id":12,"type":"charge.failed"}`), "charge.failed"},
		{"stripe invalid json", "stripe", nil, `{"id":"evt_1",`, hashKey(`{"id":"evt_1",`), ""},
		{"stripe trailing garbage", "stripe", nil, `{"id":"evt_1"} x`, hashKey(`{"id":"evt_1"} x`), ""},
		{"stripe invalid utf-8", "stripe", nil, "{\"id\":\"evt_\xff\",\"type\":\"a\"}", hashKey("{\"id\":\"evt_\xff\",\"type\":\"a\"}"), ""},
		{"stripe array body", "stripe", nil, `[{"id":"evt_1"}]`, hashKey(`[{"id":"evt_1"}]`), ""},
		{"stripe long id", "stripe", nil, `{"id":"` + long + `","type":"t"}`, hashKey(`{"id":"` + long + `","type":"t"}`), "t"},
		{"stripe 256-byte id", "stripe", nil, `{"id":"` + exact + `"}`, exact, ""},
		{"stripe escaped control char", "stripe", nil, `{"id":"a\nb","type":"t"}`, hashKey(`{"id":"a\nb","type":"t"}`), "t"},
		{"stripe headers ignored", "stripe", hdr("X-Event-Id", "h1", "X-Event-Type", "h"), `{}`, hashKey(`{}`), ""},

		{"github", "github", hdr("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-GitHub-Event", "issues"), `{"action":"opened"}`, "72d3162e-cc78-11e3-81ab-4c9367dc0958", "issues"},
		{"github lower-case header names", "github", http.Header{"X-Github-Delivery": {"d1"}, "X-Github-Event": {"push"}}, `{}`, "d1", "push"},
		{"github missing delivery", "github", hdr("X-GitHub-Event", "ping"), `{"zen":"x"}`, hashKey(`{"zen":"x"}`), "ping"},
		{"github long delivery", "github", hdr("X-GitHub-Delivery", long), `{}`, hashKey(`{}`), ""},
		{"github invalid utf-8 event", "github", hdr("X-GitHub-Delivery", "d", "X-GitHub-Event", "\xff"), `{}`, "d", ""},

		{"shopify", "shopify", hdr("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "X-Shopify-Topic", "orders/create"), `{}`, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "orders/create"},
		{"shopify missing id", "shopify", hdr("X-Shopify-Topic", "orders/create"), `{"id":1}`, hashKey(`{"id":1}`), "orders/create"},

		{"slack event callback", "slack", nil, slackEvent, "Ev123ABC456", "app_mention"},
		{"slack url verification", "slack", nil, `{"token":"t","challenge":"c","type":"url_verification"}`, hashKey(`{"token":"t","challenge":"c","type":"url_verification"}`), "url_verification"},
		{"slack form body", "slack", nil, "token=x&command=%2Fdo", hashKey("token=x&command=%2Fdo"), ""},
		{"slack event not an object", "slack", nil, `{"event":"x","type":"event_callback","event_id":"Ev1"}`, "Ev1", "event_callback"},

		{"generic webhook-id first", "generic", hdr("webhook-id", "msg_1", "X-Webhook-Id", "w", "X-Event-Id", "e", "X-Event-Type", "user.created"), `{}`, "msg_1", "user.created"},
		{"generic X-Webhook-Id", "generic", hdr("X-Webhook-Id", "w", "X-Event-Id", "e"), `{}`, "w", ""},
		{"generic X-Event-Id", "generic", hdr("X-Event-Id", "e"), `{}`, "e", ""},
		{"generic none", "generic", hdr(), `hello`, hashKey(`hello`), ""},
		{"generic control char", "generic", hdr("X-Event-Id", "a\x00b"), `hello`, hashKey(`hello`), ""},
		{"generic body ids ignored", "generic", hdr(), `{"id":"x","type":"y"}`, hashKey(`{"id":"x","type":"y"}`), ""},
		{"unknown provider", "paypal", hdr("X-Event-Id", "e", "X-Event-Type", "t"), `{"id":"x"}`, hashKey(`{"id":"x"}`), ""},
		{"empty body", "stripe", nil, ``, hashKey(``), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = http.Header{}
			}
			key, typ := Extract(tc.provider, h, []byte(tc.body))
			if key != tc.key || typ != tc.typ {
				t.Errorf("Extract = (%q, %q), want (%q, %q)", key, typ, tc.key, tc.typ)
			}
			checkExtract(t, tc.provider, h, []byte(tc.body))
		})
	}
}

// checkExtract asserts what storage relies on for any input: a non-empty,
// bounded, printable UTF-8 key and a bounded event type.
func checkExtract(t testing.TB, provider model.Provider, h http.Header, body []byte) {
	t.Helper()
	key, typ := Extract(provider, h, body)
	if key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		t.Fatalf("Extract(%q) key %q is not bounded UTF-8", provider, key)
	}
	if len(typ) > MaxKeyLen || !utf8.ValidString(typ) {
		t.Fatalf("Extract(%q) event type %q is not bounded UTF-8", provider, typ)
	}
}

func TestExtractStandardWebhooks(t *testing.T) {
	h := hdr("webhook-id", "msg_1", "X-Event-Type", "from.header")
	if k, typ := Extract(ProviderStandard, h, []byte(`{"type":"user.created","data":{}}`)); k != "msg_1" || typ != "user.created" {
		t.Fatalf("key %q type %q", k, typ)
	}
	if _, typ := Extract(ProviderStandard, h, []byte(`not json`)); typ != "from.header" {
		t.Fatalf("type without a body type: %q", typ)
	}
}

func TestBodyKey(t *testing.T) {
	body := []byte(`{"order":1}`)
	a := BodyKey("orders/create", body)
	cases := []struct {
		name string
		key  string
		same bool
	}{
		{"same type and body", BodyKey("orders/create", body), true},
		{"other topic, same body (Shopify sends these)", BodyKey("orders/paid", body), false},
		{"other body", BodyKey("orders/create", []byte(`{"order":2}`)), false},
		{"type and body boundary moved", BodyKey("orders/create{", []byte(`"order":1}`)), false},
		{"no type", BodyKey("", body), false},
	}
	for _, tc := range cases {
		if (tc.key == a) != tc.same {
			t.Errorf("%s: key %s vs %s", tc.name, tc.key, a)
		}
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Fatalf("key %q", a)
	}
}
