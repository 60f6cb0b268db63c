package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		target string
		ok     bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.8.9.10:8080/", true},
		{"http://localhost:8080", true},
		{"http://LOCALHOST", true},
		{"http://[::1]:8080", true},
		{"https://127.0.0.1", true},
		{"http://10.0.0.1:8080", false},
		{"http://192.168.1.2", false},
		{"http://example.com", false},
		{"http://[::]:8080", false},
		{"http://0.0.0.0:8080", false},
		{"ftp://127.0.0.1", false},
		{"127.0.0.1:8080", false},
		{"http://127.1:8080", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			_, err := CheckLoopbackURL(tt.target)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckLoopbackURL(%q) = %v, want ok=%v", tt.target, err, tt.ok)
			}
			opts := Options{Target: tt.target}
			if err := opts.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate with target %q = %v, want ok=%v", tt.target, err, tt.ok)
			}
		})
	}
	if err := CheckLoopbackHostPort("192.0.2.1:80"); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("sink address 192.0.2.1:80: %v, want ErrNotLoopback", err)
	}
	if _, err := Run(context.Background(), Options{Target: "http://192.0.2.1:80"}); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Run against a public address: %v, want ErrNotLoopback", err)
	}
}

func TestClientDialsOnlyLoopback(t *testing.T) {
	c := newClient(1, time.Second)
	defer c.CloseIdleConnections()
	// 192.0.2.0/24 is TEST-NET-1: the dial must be refused before any packet.
	_, err := c.Get("http://192.0.2.1:80/")
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("GET a non-loopback address: %v, want ErrNotLoopback", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Scenarios: []string{"nope"}},
		{Rate: -1},
		{Ordering: "random"},
		{SinkAddr: "8.8.8.8:53"},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("DefaultOptions().Validate() = %v", err)
	}
}

// countingServer answers 202 and counts the requests it saw.
func countingServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) (*httpServer, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s, err := startHTTPServer("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if h != nil {
			h(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &n
}

func TestOpenLoopKeepsTheSchedule(t *testing.T) {
	srv, seen := countingServer(t, nil)
	client := newClient(4, 5*time.Second)
	defer client.CloseIdleConnections()
	sg := newSigner(client, srv.url(), "bench", "s", 128)
	lr := load{rate: 200, workers: 4, duration: 500 * time.Millisecond, requests: 1000, newWorker: sg.newWorker}.run(context.Background())
	// 200/s for half a second is 100 slots, all sent even if some go late.
	if got := lr.rec.ok.Load(); got != 100 || seen.Load() != 100 {
		t.Fatalf("open loop at 200/s for 500ms: %d ok, server saw %d; want 100", got, seen.Load())
	}
	if lr.elapsed < 490*time.Millisecond {
		t.Fatalf("100 requests at 200/s took %v; the schedule was not kept", lr.elapsed)
	}

	lr = load{rate: 1e6, workers: 4, duration: time.Minute, requests: 37, newWorker: sg.newWorker}.run(context.Background())
	if got := lr.rec.ok.Load(); got != 37 {
		t.Fatalf("request cap 37: sent %d", got)
	}
}

// TestOpenLoopShowsAStall is the coordinated-omission check: a server that
// stops answering for 300 ms must show it in the latency of every request
// that was due during the stall, not just in the few that were in flight.
func TestOpenLoopShowsAStall(t *testing.T) {
	var (
		once       sync.Once
		stallUntil atomic.Int64 // unix nanos; requests arriving before it wait for it
	)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			// 200 ms after the first request, stop answering for 300 ms.
			stallUntil.Store(time.Now().Add(500 * time.Millisecond).UnixNano())
		})
		if until := time.Unix(0, stallUntil.Load()); time.Until(until) < 300*time.Millisecond {
			time.Sleep(time.Until(until))
		}
		w.WriteHeader(http.StatusAccepted)
	})
	client := newClient(8, 5*time.Second)
	defer client.CloseIdleConnections()
	sg := newSigner(client, srv.url(), "bench", "s", 128)
	lr := load{rate: 500, workers: 8, duration: time.Second, requests: 10_000, newWorker: sg.newWorker}.run(context.Background())
	lat := lr.rec.latency()
	// About 30% of the slots fall in the stall; a closed-loop measurement
	// would charge the stall to 8 requests out of ~500 (under 2%) and
	// show a p90 of well under a millisecond.
	if lat.P90 < 50 || lat.Max < 200 {
		t.Fatalf("a 300ms stall under open-loop load: p90 %.1fms max %.1fms; the stall is hidden", lat.P90, lat.Max)
	}
	if lr.rec.ok.Load() != 500 {
		t.Fatalf("sent %d of 500 scheduled requests", lr.rec.ok.Load())
	}
}

func TestClosedLoop(t *testing.T) {
	srv, seen := countingServer(t, nil)
	client := newClient(3, 5*time.Second)
	defer client.CloseIdleConnections()
	sg := newSigner(client, srv.url(), "bench", "s", 64)
	lr := load{closed: true, workers: 3, duration: 300 * time.Millisecond, requests: 1 << 40, newWorker: sg.newWorker}.run(context.Background())
	if lr.rec.ok.Load() == 0 || lr.rec.ok.Load() != seen.Load() || lr.throughput() <= 0 {
		t.Fatalf("closed loop: %d ok, server saw %d, throughput %v", lr.rec.ok.Load(), seen.Load(), lr.throughput())
	}
	lr = load{closed: true, workers: 3, duration: time.Minute, requests: 10, newWorker: sg.newWorker}.run(context.Background())
	if lr.rec.ok.Load() != 10 {
		t.Fatalf("closed loop with a cap of 10 sent %d", lr.rec.ok.Load())
	}
}

func TestErrorsAreCounted(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "storage failure", http.StatusServiceUnavailable)
	})
	client := newClient(2, 5*time.Second)
	defer client.CloseIdleConnections()
	sg := newSigner(client, srv.url(), "bench", "s", 64)
	lr := load{rate: 1000, workers: 2, duration: time.Second, requests: 20, newWorker: sg.newWorker}.run(context.Background())
	if lr.rec.errs.Load() != 20 || lr.rec.ok.Load() != 0 {
		t.Fatalf("20 requests answered 503: %d errors, %d ok", lr.rec.errs.Load(), lr.rec.ok.Load())
	}
	if err := lr.rec.firstError(); !isStatus(err, 503) || !strings.Contains(err.Error(), "storage failure") {
		t.Fatalf("first error %v, want the 503 with its body", err)
	}
}

// verifyingHandler checks the ingest contract the signer must meet.
func verifyingHandler(t *testing.T, secret string, ids *sync.Map) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(b)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if got := r.Header.Get(headerSignature); got != want {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(headerWebhookID)
		if !bytes.Contains(b, []byte(id)) || id == "" {
			http.Error(w, "id not in body", http.StatusBadRequest)
			return
		}
		if _, dup := ids.LoadOrStore(id, true); dup {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"event_id":"x","duplicate":true}`)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"event_id":"x","duplicate":false}`)
	}
}

func TestSignerMeetsTheIngestContract(t *testing.T) {
	var ids sync.Map
	srv, err := startHTTPServer("", http.HandlerFunc(verifyingHandler(t, "topsecret", &ids)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client := newClient(4, 5*time.Second)
	defer client.CloseIdleConnections()
	sg := newSigner(client, srv.url(), "bench", "topsecret", 700)
	lr := load{closed: true, workers: 4, duration: time.Minute, requests: 200, newWorker: sg.newWorker}.run(context.Background())
	if lr.rec.ok.Load() != 200 || lr.rec.errs.Load() != 0 {
		t.Fatalf("200 signed requests: %d ok, %d errors (first %v)", lr.rec.ok.Load(), lr.rec.errs.Load(), lr.rec.firstError())
	}
	n := 0
	ids.Range(func(k, _ any) bool {
		n++
		prefix, _, sent, ok := parseWebhookID(k.(string))
		if !ok || prefix != sg.prefix || time.Since(sent) > time.Minute {
			t.Errorf("id %q does not carry the run prefix and send time", k)
		}
		return true
	})
	if n != 200 {
		t.Fatalf("%d distinct ids for 200 requests", n)
	}
	if b := appendBody(nil, []byte("id"), 700); len(b) != 700 || !json.Valid(b) {
		t.Fatalf("body of %d bytes, valid JSON %v; want 700 and valid", len(b), json.Valid(b))
	}
}

func TestNoopIngestAnswersLikeTheServer(t *testing.T) {
	srv, err := startHTTPServer("", noopIngest())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Post(srv.url()+"/in/bench", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		EventID   string `json:"event_id"`
		Duplicate *bool  `json:"duplicate"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted || out.EventID == "" || out.Duplicate == nil || *out.Duplicate {
		t.Fatalf("noop answered %d %+v; want 202 with an event id and duplicate false", resp.StatusCode, out)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestLatencySummary(t *testing.T) {
	h := newHist()
	for i := int64(1); i <= 1000; i++ {
		_ = h.RecordValue(i * 1000) // 1..1000 ms in µs
	}
	l := latencyOf(h)
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if !near(l.P50, 500) || !near(l.P90, 900) || !near(l.P99, 990) || !near(l.P999, 999) || !near(l.Max, 1000) {
		t.Fatalf("1..1000ms summarised as %+v", l)
	}
	if (latencyOf(newHist()) != Latency{}) {
		t.Fatal("an empty histogram must summarise as zeros")
	}
}

func TestReportJSONShape(t *testing.T) {
	rep := &Report{Machine: machineFacts(context.Background()), Scenarios: []ScenarioResult{{
		Name: "ingest", Mode: "open 1000/s x64", Throughput: 999, Unit: "req/s", BaselineThroughput: 2000, Ratio: 0.4995,
		Latency: Latency{1, 2, 3, 4, 5}, BaselineLatency: &Latency{0.1, 0.2, 0.3, 0.4, 0.5}, Count: 9990, Errors: 1,
		Extra: map[string]float64{"p99_ratio": 10},
	}}}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc["machine"].(map[string]any)
	for _, k := range []string{"cores", "go_version", "os", "arch"} {
		if _, ok := m[k]; !ok {
			t.Errorf("machine.%s missing", k)
		}
	}
	s := doc["scenarios"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "throughput", "unit", "baseline_throughput", "ratio", "latency_ms", "errors"} {
		if _, ok := s[k]; !ok {
			t.Errorf("scenarios[0].%s missing", k)
		}
	}
	lat := s["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms.%s missing", k)
		}
	}

	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"scenario", "p99.9 ms", "ingest", "baseline", "0.500", "p99_ratio=10.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	if w := len(lines[1]); len(lines[2]) != w {
		t.Errorf("table rows are not aligned:\n%s", out)
	}
}

func TestMachineFacts(t *testing.T) {
	m := machineFacts(context.Background())
	if m.Cores <= 0 || m.GoVersion == "" || m.OS == "" || m.Arch == "" {
		t.Fatalf("machine facts incomplete: %+v", m)
	}
	if got := cpuModel("/nonexistent"); got != "" {
		t.Fatalf("cpuModel of a missing file = %q", got)
	}
}

func TestFindFingerprint(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "tunnel")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "tunnel-cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	got, err := findFingerprint(dir)
	if want := "sha256:" + hex.EncodeToString(sum[:]); err != nil || got != want {
		t.Fatalf("findFingerprint = %q, %v; want %q", got, err, want)
	}
	if _, err := findFingerprint(t.TempDir()); err == nil {
		t.Fatal("findFingerprint of a dir without a certificate: no error")
	}
}

// TestAlternateRounds: with rounds, each side gets its share of every slice,
// ids stay unique across slices (a repeat would be answered as a duplicate
// and counted as an error), and the sides take turns.
func TestAlternateRounds(t *testing.T) {
	var idsA, idsB sync.Map
	var mu sync.Mutex
	var turns []string // the side of each request, in arrival order
	serve := func(name string, ids *sync.Map) *httpServer {
		h := verifyingHandler(t, "benchsecret", ids)
		s, err := startHTTPServer("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			if len(turns) == 0 || turns[len(turns)-1] != name {
				turns = append(turns, name)
			}
			mu.Unlock()
			h(w, r)
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := serve("ours", &idsA), serve("base", &idsB)
	r := &runner{opts: Options{Rate: 200, Concurrency: 4, Duration: 400 * time.Millisecond, Requests: 1 << 30, Rounds: 4,
		Source: "bench", Secret: "benchsecret", BodySize: 100}}
	r.client = newClient(4, 5*time.Second)
	defer r.client.CloseIdleConnections()
	mk := func(url string) func(bool) load {
		return func(bool) load { return r.phase(newSigner(r.client, url, "bench", "benchsecret", 100).newWorker) }
	}
	quiesced := 0
	lr, br := r.alternate(context.Background(), "test", mk(a.url()), mk(b.url()), func(context.Context) { quiesced++ })
	// 200/s over four 100 ms slices a side: 20 slots a slice, 80 a side.
	for name, res := range map[string]loadResult{"ours": lr, "baseline": br} {
		if res.rec.ok.Load() != 80 || res.rec.errs.Load() != 0 {
			t.Errorf("%s: %d ok, %d errors (first %v); want 80 and 0", name, res.rec.ok.Load(), res.rec.errs.Load(), res.rec.firstError())
		}
		if res.elapsed < 400*time.Millisecond || res.throughput() <= 0 {
			t.Errorf("%s: elapsed %v over four 100ms slices", name, res.elapsed)
		}
	}
	want := []string{"ours", "base", "ours", "base"} // ABBA: ours | base base | ours ours | base base | ours
	mu.Lock()
	defer mu.Unlock()
	if len(turns) != 5 || turns[0] != want[0] || turns[1] != want[1] || turns[2] != want[2] {
		t.Errorf("turns %v, want ours, base, ours, base, ours (ABBA)", turns)
	}
	if quiesced != 4 {
		t.Errorf("quiesce ran %d times, want before each of the 4 baseline slices", quiesced)
	}
}

func TestServerConfigPaused(t *testing.T) {
	cfg := serverConfig("bench", "s", []string{"a"}, []destConfig{
		{slug: "a", url: "http://127.0.0.1:1/hook", ordering: "parallel", maxInFlight: 64, timeout: time.Second, maxAttempts: 3, backoffBase: time.Second, paused: true},
		{slug: "b", url: "http://127.0.0.1:1/hook", ordering: "parallel", maxInFlight: 64, timeout: time.Second, maxAttempts: 3, backoffBase: time.Second},
	})
	if strings.Count(cfg, "paused: true\n") != 1 || !strings.HasSuffix(strings.Split(cfg, "  - slug: \"b\"")[0], "paused: true\n") {
		t.Fatalf("config, want only a paused:\n%s", cfg)
	}
}

func TestServerConfigOrderedHasOneInFlight(t *testing.T) {
	cfg := serverConfig("bench", "s", []string{"a"}, []destConfig{
		{slug: "a", url: "http://127.0.0.1:1/hook", ordering: "ordered", maxInFlight: 64, timeout: time.Second, maxAttempts: 3, backoffBase: time.Second},
		{slug: "b", url: "http://127.0.0.1:1/hook", ordering: "parallel", maxInFlight: 64, timeout: time.Second, maxAttempts: 3, backoffBase: time.Second},
	})
	if !strings.Contains(cfg, "ordering: ordered\n    max_in_flight: 1\n") || !strings.Contains(cfg, "ordering: parallel\n    max_in_flight: 64\n") {
		t.Fatalf("config:\n%s", cfg)
	}
}
