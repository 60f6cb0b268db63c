package verify

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func BenchmarkVerifyGeneric(b *testing.B) {
	for _, size := range []int{256, 4096} {
		body := bytes.Repeat([]byte("x"), size)
		h := hdr("X-Webhookops-Signature", SignGeneric(secretA, body))
		for _, c := range []struct {
			name    string
			secrets [][]byte
		}{
			{"1secret", [][]byte{secretA}},
			{"rotated2", [][]byte{secretB, secretA}},
		} {
			b.Run(c.name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if err := Verify(ProviderGeneric, c.secrets, h, body, testNow); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkVerifyStripe(b *testing.B) {
	body := []byte(stripeEvent)
	h := hdr("Stripe-Signature", SignStripe(secretA, testNow.Add(-time.Second), body))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Verify(ProviderStripe, [][]byte{secretA}, h, body, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractStripe(b *testing.B) {
	body := []byte(stripeEvent)
	h := http.Header{}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if key, _ := Extract(ProviderStripe, h, body); key == "" {
			b.Fatal("no key")
		}
	}
}
