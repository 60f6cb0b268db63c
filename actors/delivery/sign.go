package delivery

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret GenerateSigningSecret makes, as in
// the Standard Webhooks specification.
const SecretPrefix = "whsec_"

// secretBytes is the entropy of a generated secret: 192 bits, the size the
// Standard Webhooks reference libraries generate.
const secretBytes = 24

// GenerateSigningSecret returns a new destination signing secret:
// "whsec_" followed by the standard base64 of 24 random bytes.
func GenerateSigningSecret() (string, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("delivery.GenerateSigningSecret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Sign returns the Standard Webhooks signature header value
// "v1,<base64 HMAC-SHA256(key, id + "." + unix seconds + "." + body)>".
//
// The key is the base64-decoded part of secret after "whsec_". A secret
// without the prefix, or whose remainder is not valid base64, is used as raw
// bytes, so a key imported from another system still signs (the receiver
// must then use the same raw key).
func Sign(secret, id string, ts time.Time, body []byte) string {
	var keyBuf [64]byte
	key := signingKey(secret, keyBuf[:0])

	mac := hmac.New(sha256.New, key)
	// One buffer holds "id.ts." and then the sum, so the hash writes cost a
	// single allocation whatever the body size.
	buf := make([]byte, 0, max(len(id)+22, sha256.Size))
	buf = append(buf, id...)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, ts.Unix(), 10)
	buf = append(buf, '.')
	mac.Write(buf)
	mac.Write(body)

	var enc [44]byte // base64 of a SHA-256 sum: 4*ceil(32/3)
	base64.StdEncoding.Encode(enc[:], mac.Sum(buf[:0]))
	var sb strings.Builder
	sb.Grow(len("v1,") + len(enc))
	sb.WriteString("v1,")
	sb.Write(enc[:])
	return sb.String()
}

// signingKey decodes secret into buf when it can, growing buf if needed.
func signingKey(secret string, buf []byte) []byte {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return []byte(secret)
	}
	if n := base64.StdEncoding.DecodedLen(len(rest)); cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	key, err := base64.StdEncoding.AppendDecode(buf[:0], []byte(rest))
	if err != nil {
		return []byte(secret)
	}
	return key
}
