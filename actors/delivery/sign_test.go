package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's published example: a receiver's
// existing library must accept what we send.
func TestSignStandardWebhooksVector(t *testing.T) {
	got := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func hmacSig(key []byte, msg string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestSignKeyForms(t *testing.T) {
	ts := time.Unix(1700000000, 999) // sub-second part is not signed
	body := []byte{0xff, 0x00, '{', '}'}
	msg := "evt_1.1700000000." + string(body)
	for _, tc := range []struct {
		name, secret string
		key          []byte
	}{
		{"raw key without prefix", "plain-text-key", []byte("plain-text-key")},
		{"prefix with invalid base64 is raw", "whsec_not*base64", []byte("whsec_not*base64")},
		{"empty", "", nil},
		{"long key", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 100)), make([]byte, 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := Sign(tc.secret, "evt_1", ts, body), hmacSig(tc.key, msg); got != want {
				t.Fatalf("Sign = %q, want %q", got, want)
			}
		})
	}
}

func TestGenerateSigningSecret(t *testing.T) {
	a, err := GenerateSigningSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateSigningSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	rest, ok := strings.CutPrefix(a, "whsec_")
	if !ok {
		t.Fatalf("%q has no whsec_ prefix", a)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) != 24 {
		t.Fatalf("%q: %d key bytes, %v; want 24", a, len(key), err)
	}
	if got, want := Sign(a, "id", time.Unix(5, 0), []byte("b")), hmacSig(key, "id.5.b"); got != want {
		t.Fatalf("Sign with a generated secret = %q, want %q", got, want)
	}
}

func TestSignAllocs(t *testing.T) {
	body := make([]byte, 4096)
	ts := time.Unix(1700000000, 0)
	n := testing.AllocsPerRun(100, func() {
		Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_1", ts, body)
	})
	// hmac.New and its two SHA-256 states, the id conversion and the result.
	if n > 8 {
		t.Fatalf("Sign allocates %v times per call", n)
	}
}

func BenchmarkSign(b *testing.B) {
	body := make([]byte, 1024)
	ts := time.Unix(1700000000, 0)
	b.ReportAllocs()
	for b.Loop() {
		Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_1", ts, body)
	}
}
