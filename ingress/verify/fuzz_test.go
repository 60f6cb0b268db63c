package verify

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// mustVerify fails the fuzz run if a correctly signed request is rejected.
func mustVerify(t *testing.T, provider model.Provider, secrets [][]byte, h http.Header, body []byte, now time.Time) {
	t.Helper()
	if err := Verify(provider, secrets, h, body, now); err != nil {
		t.Fatalf("valid %s signature rejected: %v\nheaders %q", provider, err, h)
	}
}

// mustBeError checks that a failure is always an *Error with a known reason.
func mustBeError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ve *Error
	if !errors.As(err, &ve) {
		t.Fatalf("Verify returned %T %v, want *Error", err, err)
	}
	switch ve.Reason {
	case ReasonUnknownProvider, ReasonNoSecrets, ReasonMissingSignature, ReasonMalformedSignature,
		ReasonSignatureMismatch, ReasonTimestampMissing, ReasonTimestampMalformed, ReasonTimestampSkew:
	default:
		t.Fatalf("unknown reason %q", ve.Reason)
	}
}

func FuzzStripeHeader(f *testing.F) {
	body := []byte(stripeEvent)
	f.Add(SignStripe(secretA, testNow, body), []byte("k"), body, "zz")
	f.Add(SignStripe(secretA, testNow, body)+",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39", secretA, []byte{}, "")
	f.Add("t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39", []byte("whsec_x"), []byte("{}"), "t=1")
	f.Add("t=,v1=,=,", []byte{0xff}, []byte{0xff}, "\xff")
	f.Fuzz(func(t *testing.T, header string, secret, body []byte, junk string) {
		secrets := [][]byte{secret}
		err := Verify(ProviderStripe, secrets, hdr("Stripe-Signature", header), body, testNow)
		mustBeError(t, err)
		if len(secret) == 0 {
			return
		}
		valid := SignStripe(secret, testNow, body)
		mustVerify(t, ProviderStripe, secrets, hdr("Stripe-Signature", valid), body, testNow)
		// Extra entries of other schemes or malformed v1 values must not stop
		// a valid v1 from verifying.
		junk = strings.ReplaceAll(junk, ",", "")
		mixed := valid[:strings.Index(valid, ",")] + ",v0=" + junk + ",v1=" + junk + "," + valid[strings.Index(valid, ",")+1:]
		mustVerify(t, ProviderStripe, secrets, hdr("Stripe-Signature", mixed), body, testNow)
	})
}

func FuzzStandardSignature(f *testing.F) {
	body := []byte(`{"type":"user.created","data":{"id":1}}`)
	ts := testNow.Add(-10 * time.Second)
	f.Add(SignStandard(secretA, "msg_1", ts, body), "msg_1", secretA, body, "v1a,xyz")
	f.Add("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "msg_p5jXN8AQM9LWM0D4loKWxJek", []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), []byte(`{"test": 2432232314}`), "v1,")
	f.Add("v1,"+strings.Repeat("A", 44)+" v1", "", []byte("whsec_"), []byte{}, "v2,====")
	f.Fuzz(func(t *testing.T, sigHeader, id string, secret, body []byte, junk string) {
		h := hdr("webhook-id", id, "webhook-timestamp", unix(ts), "webhook-signature", sigHeader)
		mustBeError(t, Verify(ProviderStandard, [][]byte{secret}, h, body, testNow))
		if len(secret) == 0 {
			return
		}
		if id == "" {
			id = "msg"
		}
		junk = strings.ReplaceAll(junk, " ", "")
		for _, s := range [][]byte{secret, []byte("whsec_" + base64.StdEncoding.EncodeToString(secret))} {
			sig := SignStandard(s, id, ts, body)
			h := hdr("webhook-id", id, "webhook-timestamp", unix(ts), "webhook-signature", junk+" "+sig)
			mustVerify(t, ProviderStandard, [][]byte{s}, h, body, testNow)
		}
	})
}

// FuzzVerify signs a request for every provider, checks it verifies, then
// overwrites one header with fuzz input and checks nothing panics. It also
// checks the pooled HMAC against crypto/hmac and Extract's bounds.
func FuzzVerify(f *testing.F) {
	for p := range 6 {
		f.Add(uint8(p), secretA, []byte(stripeEvent), uint8(0), "x", int64(0))
		f.Add(uint8(p), []byte("It's a Secret to Everybody"), []byte("Hello, World!"), uint8(p*2), SignGeneric(secretB, nil), int64(-300))
	}
	f.Add(uint8(3), []byte("8f742231b10e8888abcd99yyyzzz85a5"), []byte(slackEvent), uint8(7), "1531420618", int64(301))
	f.Add(uint8(4), []byte("whsec_"), []byte("{\"id\":\"\xff\"}"), uint8(9), "t=0,v1=00", int64(-1))
	f.Fuzz(func(t *testing.T, p uint8, secret, body []byte, which uint8, value string, offset int64) {
		providers := []model.Provider{ProviderGeneric, ProviderGitHub, ProviderShopify, ProviderSlack, ProviderStripe, ProviderStandard}
		provider := providers[int(p)%len(providers)]
		// The signing time: within the window for |offset| <= 300 seconds.
		at := testNow.Add(time.Duration(offset%100_000) * time.Second)
		h := http.Header{}
		switch provider {
		case ProviderGeneric:
			h.Set(hdrGenericSig, SignGeneric(secret, body))
		case ProviderStandard:
			h.Set(hdrStdID, "msg_1")
			h.Set(hdrStdTS, unix(at))
			h.Set(hdrStdSig, SignStandard(secret, "msg_1", at, body))
		case ProviderGitHub:
			h.Set(hdrGitHubSig, SignGitHub(secret, body))
		case ProviderShopify:
			h.Set(hdrShopifySig, SignShopify(secret, body))
		case ProviderSlack:
			h.Set(hdrSlackSig, SignSlack(secret, at, body))
			h.Set(hdrSlackTS, unix(at))
		case ProviderStripe:
			h.Set(hdrStripeSig, SignStripe(secret, at, body))
		}
		timestamped := provider == ProviderSlack || provider == ProviderStripe || provider == ProviderStandard
		skewed := timestamped && testNow.Sub(at).Abs() > MaxSkew
		err := Verify(provider, [][]byte{secretC, secret}, h, body, testNow)
		mustBeError(t, err)
		if len(secret) > 0 && !skewed && err != nil {
			t.Fatalf("valid %s signature rejected: %v", provider, err)
		}
		if skewed && !errors.Is(err, ErrTimestampSkew) {
			t.Fatalf("%s signed %v away verified with %v, want timestamp_skew", provider, testNow.Sub(at), err)
		}
		checkExtract(t, provider, h, body)

		names := []string{hdrGenericSig, hdrStdID, hdrStdTS, hdrStdSig, hdrGitHubSig, hdrShopifySig, hdrSlackSig, hdrSlackTS, hdrStripeSig,
			"X-Github-Delivery", "X-Github-Event", "X-Shopify-Webhook-Id", "X-Shopify-Topic", "X-Webhook-Id", "X-Event-Id", "X-Event-Type"}
		h[names[int(which)%len(names)]] = []string{value}
		mustBeError(t, Verify(provider, [][]byte{secret}, h, body, testNow))
		checkExtract(t, provider, h, body)

		m := getMacer()
		got := m.mac(secret, []byte(value), body)
		want := refMAC(secret, value, string(body))
		if !hmac.Equal(got, want) {
			t.Fatalf("pooled mac %x != crypto/hmac %x", got, want)
		}
		putMacer(m)
	})
}
