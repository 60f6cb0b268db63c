package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/webhookops/webhookops/wal/model"
)

// MaxKeyLen bounds a provider-supplied idempotency key (and event type) in
// bytes, so storage keys stay bounded. Longer keys are replaced by the body
// hash; longer event types by "".
const MaxKeyLen = 256

// hashKeyPrefix marks a key derived from the body rather than supplied by the
// sender.
const hashKeyPrefix = "sha256:"

// Extract returns the idempotency key and event type of a request:
//
//	provider  key                                         event type
//	stripe    body "id"                                   body "type"
//	github    X-GitHub-Delivery                           X-GitHub-Event
//	shopify   X-Shopify-Webhook-Id                        X-Shopify-Topic
//	slack     body "event_id"                             body "event.type", else "type"
//	generic   webhook-id, else X-Webhook-Id, else         X-Event-Type
//	          X-Event-Id
//	standard- webhook-id (signed)                         body "type", else
//	webhooks                                              X-Event-Type
//
// When the provider's key is missing, or is longer than [MaxKeyLen] bytes,
// invalid UTF-8 or contains control characters, or the provider is unknown,
// the key is "sha256:<hex of SHA-256(body)>". An event type that is missing or
// fails the same checks is "". Bodies are parsed only for stripe and slack,
// only their top-level fields named above are decoded, and a body that is not
// valid UTF-8 JSON yields the hash key and "". Extract never panics.
func Extract(provider model.Provider, h http.Header, body []byte) (key, eventType string) {
	switch provider {
	case ProviderStripe:
		var ev struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if decodeJSON(body, &ev) {
			key, eventType = ev.ID, ev.Type
		}
	case ProviderGitHub:
		key, eventType = h.Get("X-Github-Delivery"), h.Get("X-Github-Event")
	case ProviderShopify:
		key, eventType = h.Get("X-Shopify-Webhook-Id"), h.Get("X-Shopify-Topic")
	case ProviderSlack:
		var ev struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			Event   struct {
				Type string `json:"type"`
			} `json:"event"`
		}
		if decodeJSON(body, &ev) {
			key, eventType = ev.EventID, ev.Event.Type
			if eventType == "" {
				eventType = ev.Type
			}
		}
	case ProviderGeneric:
		key = firstHeader(h, hdrStdID, "X-Webhook-Id", "X-Event-Id")
		eventType = h.Get("X-Event-Type")
	case ProviderStandard:
		key = h.Get(hdrStdID)
		var ev struct {
			Type string `json:"type"`
		}
		if decodeJSON(body, &ev) && ev.Type != "" {
			eventType = ev.Type
		} else {
			eventType = h.Get("X-Event-Type")
		}
	}
	if !boundedText(key) {
		key = bodyHashKey(body)
	}
	if !boundedText(eventType) {
		eventType = ""
	}
	return key, eventType
}

// decodeJSON decodes the named top-level fields of body into v. A field of
// the wrong JSON type is left empty (encoding/json reports it but still fills
// the others); a body that is not valid UTF-8 JSON leaves v untouched.
func decodeJSON(body []byte, v any) bool {
	// encoding/json would silently replace invalid UTF-8 with U+FFFD, making
	// two different bodies share one key; refuse them instead.
	if !utf8.Valid(body) {
		return false
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return true
	}
	_, typeErr := err.(*json.UnmarshalTypeError)
	return typeErr
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// boundedText reports whether s is usable as a key or event type: non-empty,
// at most MaxKeyLen bytes, valid UTF-8, and free of control characters (they
// would corrupt logs and the admin UI).
func boundedText(s string) bool {
	if s == "" || len(s) > MaxKeyLen || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) })
}

func bodyHashKey(body []byte) string {
	sum := sha256.Sum256(body)
	return sumKey(sum)
}

func sumKey(sum [sha256.Size]byte) string {
	var buf [len(hashKeyPrefix) + 2*sha256.Size]byte
	copy(buf[:], hashKeyPrefix)
	hex.Encode(buf[len(hashKeyPrefix):], sum[:])
	return string(buf[:])
}

// BodyKey is the idempotency key of a source that dedupes on the body
// (model.DedupeBody): "sha256:<hex>" of the raw event type header, a zero
// byte and the body. The type is part of it because Shopify sends
// byte-identical bodies for different topics of one order, which are
// different events. The raw header is hashed (not the bounded event type
// Extract returns), so no two types share a key.
func BodyKey(typeHeader string, body []byte) string {
	d := sha256.New()
	d.Write([]byte(typeHeader))
	d.Write([]byte{0})
	d.Write(body)
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	return sumKey(sum)
}

// TypeHeader is the header that names the event type of a provider whose
// type is not in the signed body ("" for the others).
func TypeHeader(provider model.Provider) string {
	switch provider {
	case ProviderGitHub:
		return "X-Github-Event"
	case ProviderShopify:
		return "X-Shopify-Topic"
	case ProviderGeneric:
		return "X-Event-Type"
	}
	return ""
}
