package wal

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/wal/model"
)

func putRaw(t *testing.T, db *DB, kind byte, slug string, raw []byte) {
	t.Helper()
	b := db.NewBatch()
	b.b.Set(configKey(kind, slug), raw, nil)
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
}

// Destination credentials are sealed at rest: signing secrets, headers
// that hold credentials (by name or listed in secret_headers) and the URL
// query; the rest stays readable. They come back exactly.
func TestDestinationCredentialsSealedAtRest(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	d := model.Destination{Slug: "app", URL: "https://h.example/hook?token=q-secret&x=1#frag",
		Headers:       map[string]string{"Authorization": "Bearer auth-secret", "X-Api-Key": "key-secret", "X-Custom": "custom-secret", "X-Team": "payments"},
		SecretHeaders: []string{"x-custom"}, SigningSecret: "whsec_sign-secret"}
	b := db.NewBatch()
	if err := b.PutDestination(d); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	raw, err := db.GetConfig(KindDestination, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"auth-secret", "key-secret", "custom-secret", "q-secret", "sign-secret"} {
		if strings.Contains(string(raw), plain) {
			t.Fatalf("%q stored in clear: %s", plain, raw)
		}
	}
	if !strings.Contains(string(raw), "payments") || !strings.Contains(string(raw), `"url":"https://h.example/hook#frag"`) {
		t.Fatalf("non-secret fields should stay readable: %s", raw)
	}
	got, err := db.Destinations()
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	g := got[0]
	if g.URL != d.URL || g.SigningSecret != d.SigningSecret || len(g.Headers) != 4 {
		t.Fatalf("round trip: %+v", g)
	}
	for k, v := range d.Headers {
		if g.Headers[k] != v {
			t.Fatalf("header %s: %q, want %q", k, g.Headers[k], v)
		}
	}
}

// A sealed value opens only in the record and field it was sealed for.
func TestSealedValueCannotMove(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	b := db.NewBatch()
	b.PutSource(model.Source{Slug: "victim", Provider: "generic", Secrets: []string{"s3cret"}})
	b.PutDestination(model.Destination{Slug: "mine", URL: "https://h.example/", SigningSecret: "whsec_x",
		Headers: map[string]string{"Authorization": "Bearer t"}})
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	raw, _ := db.GetConfig(KindSource, "victim")
	// The victim's record, copied under another slug (whoever can write
	// the store but not read the key wants its secret where they can use it).
	putRaw(t, db, KindSource, "attacker", raw)
	if _, err := db.Sources(); err == nil || !strings.Contains(err.Error(), "attacker") {
		t.Fatalf("a sealed secret opened in another record: %v", err)
	}
	putRaw(t, db, KindSource, "attacker", []byte(`{"slug":"attacker","provider":"generic"}`))
	// Moved between fields of one record: the signing secret into a header.
	var st map[string]any
	raw, _ = db.GetConfig(KindDestination, "mine")
	json.Unmarshal(raw, &st)
	st["headers"] = map[string]any{"Authorization": st["signing_secret"]}
	moved, _ := json.Marshal(st)
	putRaw(t, db, KindDestination, "mine", moved)
	if _, err := db.Destinations(); err == nil {
		t.Fatal("a signing secret opened as a header value")
	}
}

// sealV1 is how values were sealed before associated data.
func sealV1(t *testing.T, s *sealer, plain string) string {
	t.Helper()
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return sealedPrefixV1 + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), nil))
}

// A store from before: v1 values and a secret header in clear. Open seals
// them again with their record, once; afterwards a v1 value is refused.
func TestOpenMigratesV1Seals(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	src, _ := json.Marshal(model.Source{Slug: "s", Provider: "generic", Secrets: []string{sealV1(t, db.sealer, "old-secret")}})
	dst, _ := json.Marshal(model.Destination{Slug: "d", URL: "https://h.example/?k=v", SigningSecret: sealV1(t, db.sealer, "whsec_old"),
		Headers: map[string]string{"Authorization": "Bearer clear"}})
	putRaw(t, db, KindSource, "s", src)
	putRaw(t, db, KindDestination, "d", dst)
	b := db.NewBatch()
	b.b.Delete([]byte{prefixMeta, 'S'}, nil)
	db.CommitWait(b)
	db.Close()

	db = openTest(t, dir)
	srcs, err := db.Sources()
	if err != nil || srcs[0].Secrets[0] != "old-secret" {
		t.Fatalf("sources after migration: %+v %v", srcs, err)
	}
	dests, err := db.Destinations()
	if err != nil || dests[0].SigningSecret != "whsec_old" || dests[0].Headers["Authorization"] != "Bearer clear" || dests[0].URL != "https://h.example/?k=v" {
		t.Fatalf("destinations after migration: %+v %v", dests, err)
	}
	raw, _ := db.GetConfig(KindDestination, "d")
	if strings.Contains(string(raw), sealedPrefixV1) || strings.Contains(string(raw), "Bearer clear") {
		t.Fatalf("not migrated: %s", raw)
	}
	putRaw(t, db, KindSource, "s", src) // a v1 value again, after migration
	if _, err := db.Sources(); err == nil {
		t.Fatal("a v1-sealed value opened in a migrated store")
	}
	db.Close()
}

// TestSealedDestinationValuesCannotMove: every sealed value of a
// destination (or agent) opens only in its own record and field. Each case
// copies one sealed value elsewhere in the store, as someone who can write
// the store but not read the key would, and expects the read to fail
// rather than hand the value out from its new place.
func TestSealedDestinationValuesCannotMove(t *testing.T) {
	type rec = map[string]any
	cases := []struct {
		name string
		move func(victim, mine rec)
	}{
		{"a header into the same header of another destination", func(v, m rec) {
			m["headers"].(rec)["Authorization"] = v["headers"].(rec)["Authorization"]
		}},
		{"a header into another header of its destination", func(v, _ rec) {
			v["headers"].(rec)["X-Api-Key"] = v["headers"].(rec)["Authorization"]
		}},
		{"a header into a header not secret by name", func(v, _ rec) {
			v["headers"].(rec)["X-Team"] = v["headers"].(rec)["Authorization"]
		}},
		{"the URL query into another destination", func(v, m rec) { m["sealed_query"] = v["sealed_query"] }},
		{"the URL query into a header", func(v, _ rec) { v["headers"].(rec)["Authorization"] = v["sealed_query"] }},
		{"a header into the URL query", func(v, _ rec) { v["sealed_query"] = v["headers"].(rec)["Authorization"] }},
		{"the signing secret into the previous one", func(v, _ rec) { v["previous_signing_secret"] = v["signing_secret"] }},
		{"the signing secret into another destination", func(v, m rec) { m["signing_secret"] = v["signing_secret"] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, t.TempDir())
			defer db.Close()
			b := db.NewBatch()
			b.PutDestination(model.Destination{Slug: "victim", URL: "https://v.example/hook?token=victim-token", SigningSecret: "whsec_victim",
				Headers: map[string]string{"Authorization": "Bearer victim-auth", "X-Api-Key": "victim-key", "X-Team": "payments"}})
			b.PutDestination(model.Destination{Slug: "mine", URL: "https://m.example/hook?token=mine", SigningSecret: "whsec_mine",
				Headers: map[string]string{"Authorization": "Bearer mine"}})
			if err := db.CommitWait(b); err != nil {
				t.Fatal(err)
			}
			load := func(slug string) rec {
				raw, err := db.GetConfig(KindDestination, slug)
				if err != nil {
					t.Fatal(err)
				}
				var r rec
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatal(err)
				}
				return r
			}
			victim, mine := load("victim"), load("mine")
			tc.move(victim, mine)
			for slug, r := range map[string]rec{"victim": victim, "mine": mine} {
				raw, _ := json.Marshal(r)
				putRaw(t, db, KindDestination, slug, raw)
			}
			got, err := db.Destinations()
			if err == nil {
				t.Fatalf("a moved sealed value opened: %+v", got)
			}
			for _, plain := range []string{"victim-token", "whsec_victim", "victim-auth", "victim-key"} {
				if strings.Contains(err.Error(), plain) {
					t.Fatalf("the error shows %q: %v", plain, err)
				}
			}
		})
	}

	t.Run("an agent secret into another agent", func(t *testing.T) {
		db := openTest(t, t.TempDir())
		defer db.Close()
		b := db.NewBatch()
		b.PutAgent(model.Agent{ID: "victim", Secret: "victim-agent-secret"})
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		raw, _ := db.GetConfig(KindAgent, "victim")
		putRaw(t, db, KindAgent, "mine", raw)
		if got, err := db.Agents(); err == nil || !strings.Contains(err.Error(), "mine") {
			t.Fatalf("an agent secret opened under another id: %+v %v", got, err)
		}
	})
}
