package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"time"
)

// The signing helpers produce exactly what the provider would send, for tests
// and the load generator. They deliberately use crypto/hmac rather than the
// pooled implementation Verify uses, so that every sign-then-verify test also
// cross-checks the two.

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// SignGeneric returns the X-Webhookops-Signature value for body:
// "sha256=<hex HMAC-SHA256(secret, body)>".
func SignGeneric(secret, body []byte) string {
	return sha256Prefix + hex.EncodeToString(hmacSHA256(secret, body))
}

// SignGitHub returns the X-Hub-Signature-256 value for body.
func SignGitHub(secret, body []byte) string {
	return SignGeneric(secret, body)
}

// SignShopify returns the X-Shopify-Hmac-Sha256 value for body.
func SignShopify(secret, body []byte) string {
	return base64.StdEncoding.EncodeToString(hmacSHA256(secret, body))
}

// SignSlack returns the X-Slack-Signature value for body sent at ts; the
// request must also carry X-Slack-Request-Timestamp: ts.Unix() in decimal.
func SignSlack(secret []byte, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return slackPrefix + hex.EncodeToString(hmacSHA256(secret, []byte(slackSigPrefix+t+":"), body))
}

// SignStripe returns a complete Stripe-Signature value, "t=<unix>,v1=<hex>",
// for body sent at t.
func SignStripe(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(hmacSHA256(secret, []byte(ts+"."), body))
}

// SignStandard returns one Standard Webhooks webhook-signature entry,
// "v1,<base64>", for the message id sent at ts; the request must also carry
// webhook-id: id and webhook-timestamp: ts.Unix() in decimal. A secret
// written "whsec_<base64>" is decoded exactly as Verify decodes it.
func SignStandard(secret []byte, id string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmacSHA256(standardKey(secret), []byte(id+"."+t+"."), body)
	return "v1," + base64.StdEncoding.EncodeToString(mac)
}
