package verify

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Provider names accepted by [Verify] and [Extract], from the model.
const (
	ProviderGeneric  = model.ProviderGeneric
	ProviderGitHub   = model.ProviderGitHub
	ProviderShopify  = model.ProviderShopify
	ProviderSlack    = model.ProviderSlack
	ProviderStripe   = model.ProviderStripe
	ProviderStandard = model.ProviderStandardWebhooks
)

// MaxSkew is how far a signed timestamp may be from the verifier's clock, in
// either direction, before the request is rejected as a possible replay.
const MaxSkew = 5 * time.Minute

// Header names, in canonical form so http.Header.Get does not allocate.
const (
	hdrGenericSig  = "X-Webhookops-Signature"
	hdrStdID       = "Webhook-Id"
	hdrStdTS       = "Webhook-Timestamp"
	hdrStdSig      = "Webhook-Signature"
	hdrGitHubSig   = "X-Hub-Signature-256"
	hdrShopifySig  = "X-Shopify-Hmac-Sha256"
	hdrSlackSig    = "X-Slack-Signature"
	hdrSlackTS     = "X-Slack-Request-Timestamp"
	hdrStripeSig   = "Stripe-Signature"
	sha256Prefix   = "sha256="
	slackPrefix    = "v0="
	slackSigPrefix = "v0:"
)

// Verify checks that the request described by h and body was signed by the
// provider with one of secrets, and, for timestamped schemes, that the
// signature's timestamp is within [MaxSkew] of now. It returns nil on success
// and an [*Error] otherwise. Verify reads only h and body, keeps no reference
// to either, and does not allocate on success.
func Verify(provider model.Provider, secrets [][]byte, h http.Header, body []byte, now time.Time) error {
	if !provider.Valid() {
		return fail(ReasonUnknownProvider, "unknown provider")
	}
	if !anySecret(secrets) {
		return fail(ReasonNoSecrets, "the source has no active secret")
	}
	m := getMacer()
	defer putMacer(m)

	var err error
	whsec := false
	switch provider {
	case ProviderGeneric:
		// Only the plain scheme: Standard Webhooks is a provider of its
		// own, or a captured Standard Webhooks request would verify here
		// as a plain one over "id.timestamp.body", with no timestamp.
		err = m.parseSHA256Hex(h.Get(hdrGenericSig), hdrGenericSig)
	case ProviderStandard:
		err = m.parseStandard(h, now)
		whsec = true
	case ProviderGitHub:
		err = m.parseSHA256Hex(h.Get(hdrGitHubSig), hdrGitHubSig)
	case ProviderShopify:
		err = m.parseShopify(h.Get(hdrShopifySig))
	case ProviderSlack:
		err = m.parseSlack(h, now)
	case ProviderStripe:
		err = m.parseStripe(h.Get(hdrStripeSig), now)
	}
	if err != nil {
		return err
	}
	if !m.match(secrets, whsec, body) {
		return fail(ReasonSignatureMismatch, "signature does not match any active secret")
	}
	return nil
}

func anySecret(secrets [][]byte) bool {
	for _, s := range secrets {
		if len(s) > 0 {
			return true
		}
	}
	return false
}

// parseSHA256Hex handles "sha256=<hex>" (generic plain scheme and GitHub).
func (m *macer) parseSHA256Hex(v, header string) error {
	if v == "" {
		return fail(ReasonMissingSignature, header+" header missing")
	}
	hexPart, ok := strings.CutPrefix(strings.TrimSpace(v), sha256Prefix)
	if !ok || !m.addHex(hexPart) {
		return fail(ReasonMalformedSignature, header+` must be "sha256=" followed by 64 hex digits`)
	}
	return nil
}

func (m *macer) parseShopify(v string) error {
	if v == "" {
		return fail(ReasonMissingSignature, hdrShopifySig+" header missing")
	}
	if !m.addBase64(strings.TrimSpace(v)) {
		return fail(ReasonMalformedSignature, hdrShopifySig+" must be 44 characters of padded base64")
	}
	return nil
}

func (m *macer) parseSlack(h http.Header, now time.Time) error {
	v := h.Get(hdrSlackSig)
	if v == "" {
		return fail(ReasonMissingSignature, hdrSlackSig+" header missing")
	}
	hexPart, ok := strings.CutPrefix(strings.TrimSpace(v), slackPrefix)
	if !ok || !m.addHex(hexPart) {
		return fail(ReasonMalformedSignature, hdrSlackSig+` must be "v0=" followed by 64 hex digits`)
	}
	ts := strings.TrimSpace(h.Get(hdrSlackTS))
	if err := checkTimestamp(ts, hdrSlackTS, now); err != nil {
		return err
	}
	m.prefix = append(m.prefix, slackSigPrefix...)
	m.prefix = append(m.prefix, ts...)
	m.prefix = append(m.prefix, ':')
	return nil
}

// parseStripe follows Stripe's documented scheme: comma-separated key=value
// items, exactly one t, any number of v1; other schemes are ignored, as are
// v1 values that are not 64 hex digits.
func (m *macer) parseStripe(v string, now time.Time) error {
	if v == "" {
		return fail(ReasonMissingSignature, hdrStripeSig+" header missing")
	}
	var ts string
	seenT, seenV1 := false, false
	for rest := v; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fail(ReasonMalformedSignature, hdrStripeSig+` items must be "key=value"`)
		}
		switch k {
		case "t":
			if seenT {
				return fail(ReasonMalformedSignature, hdrStripeSig+" has more than one t")
			}
			seenT, ts = true, val
		case "v1":
			seenV1 = true
			m.addHex(val)
		}
	}
	if len(m.cands) == 0 {
		if seenV1 {
			return fail(ReasonMalformedSignature, hdrStripeSig+" has no well-formed v1 signature")
		}
		return fail(ReasonMalformedSignature, hdrStripeSig+" has no v1 signature")
	}
	if !seenT {
		return fail(ReasonTimestampMissing, hdrStripeSig+" has no t")
	}
	if err := checkTimestamp(ts, hdrStripeSig+" t", now); err != nil {
		return err
	}
	m.prefix = append(m.prefix, ts...)
	m.prefix = append(m.prefix, '.')
	return nil
}

// parseStandard follows the Standard Webhooks specification: the signature
// header is a space-separated list of "version,base64"; only v1 is used.
func (m *macer) parseStandard(h http.Header, now time.Time) error {
	id := h.Get(hdrStdID)
	if id == "" {
		return fail(ReasonMalformedSignature, "webhook-signature present but webhook-id missing")
	}
	for rest := h.Get(hdrStdSig); rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		if version, sig, ok := strings.Cut(entry, ","); ok && version == "v1" {
			m.addBase64(sig)
		}
	}
	if len(m.cands) == 0 {
		return fail(ReasonMalformedSignature, `webhook-signature has no well-formed "v1,<base64>" entry`)
	}
	ts := strings.TrimSpace(h.Get(hdrStdTS))
	if err := checkTimestamp(ts, "webhook-timestamp", now); err != nil {
		return err
	}
	m.prefix = append(m.prefix, id...)
	m.prefix = append(m.prefix, '.')
	m.prefix = append(m.prefix, ts...)
	m.prefix = append(m.prefix, '.')
	return nil
}

// checkTimestamp validates a decimal Unix-seconds timestamp against now.
func checkTimestamp(ts, what string, now time.Time) error {
	if ts == "" {
		return fail(ReasonTimestampMissing, what+" missing")
	}
	sec, ok := parseUnix(ts)
	if !ok {
		return fail(ReasonTimestampMalformed, what+" is not a decimal Unix time")
	}
	switch d := now.Sub(time.Unix(sec, 0)); {
	case d > MaxSkew:
		return fail(ReasonTimestampSkew, fmt.Sprintf("%s is %v in the past; at most %v is allowed", what, d.Truncate(time.Second), MaxSkew))
	case d < -MaxSkew:
		return fail(ReasonTimestampSkew, fmt.Sprintf("%s is %v in the future; at most %v is allowed", what, d.Abs().Truncate(time.Second), MaxSkew))
	}
	return nil
}

// parseUnix accepts 1 to 18 ASCII digits, so the value cannot overflow and no
// sign or space is silently accepted.
func parseUnix(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// signatureHeaders are the headers that carry a request's signature or
// credentials, in canonical form.
var signatureHeaders = map[string]bool{
	hdrGenericSig: true, hdrStdSig: true, hdrGitHubSig: true, "X-Hub-Signature": true,
	hdrShopifySig: true, hdrSlackSig: true, hdrStripeSig: true, "Authorization": true,
}

// SignatureHeader reports whether a header (any case) carries a signature
// or a credential. Reads of stored events mask these: a signature with its
// body is a request anyone could send again.
func SignatureHeader(name string) bool {
	return signatureHeaders[http.CanonicalHeaderKey(name)]
}
