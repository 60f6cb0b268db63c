package ingress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/actors/leaktest"
	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

var secret = []byte("ingress-test-secret")

type env struct {
	db   *wal.DB
	node *actors.Node
	h    *Handler
}

func newEnv(t testing.TB, dests ...model.Destination) *env {
	t.Helper()
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 16})
	if err != nil {
		t.Fatal(err)
	}
	n, err := actors.Start(actors.Config{DB: db, Deliverer: delivery.NewClient(delivery.Options{}), RejectionInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var routes []model.Route
	for _, d := range dests {
		routes = append(routes, model.Route{Destination: d.Slug})
	}
	err = n.Apply(actors.Change{
		Sources: []model.Source{
			{Slug: "gen", Provider: "generic", Secrets: []string{string(secret)}, Routes: routes},
			{Slug: "off", Provider: "generic", Secrets: []string{"x"}, Disabled: true},
		},
		Destinations: dests,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, node: n, h: NewHandler(Config{Node: n, MaxBody: 1024})}
	t.Cleanup(func() { n.Close(); db.Close() })
	return e
}

func post(h http.Handler, path string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func signed(body []byte, id string) map[string]string {
	return map[string]string{"X-Webhookops-Signature": verify.SignGeneric(secret, body), "X-Webhook-Id": id}
}

func (e *env) events(t *testing.T) []*wal.Event {
	t.Helper()
	evs, _, err := e.db.ListEvents(0, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestIngestAnswers(t *testing.T) {
	e := newEnv(t)
	invalidUTF8 := []byte{0xff, 0xfe, '{', 0x80}
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		code   string
		stored bool
	}{
		{"accepted", "POST", "/in/gen", []byte(`{"a":1}`), signed([]byte(`{"a":1}`), "k1"), 202, "", true},
		{"invalid utf-8 body kept", "POST", "/in/gen", invalidUTF8, signed(invalidUTF8, "k2"), 202, "", true},
		{"unknown source", "POST", "/in/nope", []byte(`{}`), signed([]byte(`{}`), "k3"), 404, "unknown_source", false},
		{"disabled source", "POST", "/in/off", []byte(`{}`), signed([]byte(`{}`), "k4"), 404, "unknown_source", false},
		{"no signature", "POST", "/in/gen", []byte(`{}`), map[string]string{"X-Webhook-Id": "k5"}, 401, "signature_missing_signature", false},
		{"wrong signature", "POST", "/in/gen", []byte(`{}`), map[string]string{"X-Webhookops-Signature": "sha256=" + strings.Repeat("ab", 32)}, 401, "signature_signature_mismatch", false},
		{"garbage signature", "POST", "/in/gen", []byte(`{}`), map[string]string{"X-Webhookops-Signature": "\xff\x00garbage"}, 401, "signature_malformed_signature", false},
		{"oversized", "POST", "/in/gen", bytes.Repeat([]byte("x"), 2000), signed(bytes.Repeat([]byte("x"), 2000), "k6"), 413, "body_too_large", false},
		{"wrong method", "GET", "/in/gen", nil, nil, 405, "method_not_allowed", false},
		{"other path", "POST", "/elsewhere", nil, nil, 404, "not_found", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.events(t))
			req := httptest.NewRequest(tc.method, tc.path, bytes.NewReader(tc.body))
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code != "" {
				var eb errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code != tc.code || eb.Error.Message == "" {
					t.Fatalf("error body %s, want code %s", rec.Body, tc.code)
				}
			}
			after := e.events(t)
			if stored := len(after) > before; stored != tc.stored {
				t.Fatalf("stored=%v, want %v", stored, tc.stored)
			}
			if tc.stored && !bytes.Equal(after[0].Body, tc.body) {
				t.Fatalf("body not byte-exact: %q", after[0].Body)
			}
		})
	}
	// Rejections are audited without holding up the answer: wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for {
		audit, _, _ := e.db.ListAudit(0, 100, func(a *wal.AuditEntry) bool { return a.Action == "event.signature_rejected" })
		if len(audit) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d signature rejections audited, want 3", len(audit))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOversizedChunkedBody(t *testing.T) {
	e := newEnv(t)
	body := bytes.Repeat([]byte("y"), 5000)
	req := httptest.NewRequest("POST", "/in/gen", struct{ *bytes.Reader }{bytes.NewReader(body)})
	req.ContentLength = -1
	for k, v := range signed(body, "big") {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 413 {
		t.Fatalf("status %d, want 413", rec.Code)
	}
	if n := len(e.events(t)); n != 0 {
		t.Fatalf("%d events stored", n)
	}
}

func TestDuplicateAnswersOriginalID(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"x":1}`)
	first := post(e.h, "/in/gen", body, signed(body, "dup"))
	second := post(e.h, "/in/gen", body, signed(body, "dup"))
	var a, b response
	json.Unmarshal(first.Body.Bytes(), &a)
	json.Unmarshal(second.Body.Bytes(), &b)
	if first.Code != 202 || second.Code != 200 || !b.Duplicate || a.Duplicate || a.EventID != b.EventID {
		t.Fatalf("first %d %+v, second %d %+v", first.Code, a, second.Code, b)
	}
}

func TestStorageFailureAnswers503(t *testing.T) {
	e := newEnv(t)
	e.db.Close() // every commit now fails
	body := []byte(`{}`)
	rec := post(e.h, "/in/gen", body, signed(body, "lost"))
	if rec.Code != 503 {
		t.Fatalf("status %d, want 503: %s", rec.Code, rec.Body)
	}
}

func FuzzIngest(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1"}`), "sha256=00", "k")
	f.Add([]byte{0xff, 0x00}, "", "")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, sig, key string) {
		hdr := map[string]string{}
		if validHeader(sig) {
			hdr["X-Webhookops-Signature"] = sig
		}
		if validHeader(key) {
			hdr["X-Webhook-Id"] = key
		}
		rec := post(e.h, "/in/gen", body, hdr)
		if rec.Code != 401 && rec.Code != 413 {
			t.Fatalf("unsigned request answered %d", rec.Code)
		}
	})
}

func validHeader(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// BenchmarkIngest measures the ingest path: signature check, dedupe, and a
// synced group commit of the event, its dedupe key, one outbox entry and
// its audit entry, with many requests in flight as a server would have.
func BenchmarkIngest(b *testing.B) {
	for _, withDest := range []bool{false, true} {
		b.Run(fmt.Sprintf("destinations=%v", map[bool]int{false: 0, true: 1}[withDest]), func(b *testing.B) {
			var dests []model.Destination
			if withDest {
				sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
				defer sink.Close()
				dests = append(dests, model.Destination{Slug: "sink", URL: sink.URL, Ordering: "parallel", MaxInFlight: 64, AllowPrivateNetwork: true})
			}
			e := newEnv(b, dests...)
			body := bytes.Repeat([]byte("b"), 512)
			sig := verify.SignGeneric(secret, body)
			var ctr atomic.Int64
			b.SetParallelism(64)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "/in/gen", bytes.NewReader(body))
					req.Header.Set("X-Webhookops-Signature", sig)
					req.Header.Set("X-Webhook-Id", fmt.Sprint("k", ctr.Add(1)))
					rec := httptest.NewRecorder()
					e.h.ServeHTTP(rec, req)
					if rec.Code != 202 {
						b.Errorf("status %d: %s", rec.Code, rec.Body)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// The answer to an accepted or duplicate event is byte for byte what the
// JSON encoder writes, for plain ids and for ids it must escape.
func TestAnswerBytes(t *testing.T) {
	for _, id := range []string{"evt_0001000000000000002a", "", "a-b_C9", `q"uo\te`, "é<>&", "tab\there"} {
		for _, dup := range []bool{false, true} {
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusAccepted, response{EventID: id, Duplicate: dup})
			got := httptest.NewRecorder()
			writeAnswer(got, http.StatusAccepted, id, dup)
			if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Errorf("id %q duplicate %v: %d %q %q, want %d %q %q", id, dup, got.Code, got.Body, got.Header().Get("Content-Type"),
					want.Code, want.Body, want.Header().Get("Content-Type"))
			}
		}
	}
}
