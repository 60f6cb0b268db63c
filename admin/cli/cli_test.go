package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/webhookops/webhookops/actors/leaktest"
	"go.uber.org/goleak"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/internal/testnode"
	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m,
		// pebble.Open that fails on the dir's lock (TestTokenOffline, on
		// purpose) leaves its disk-health ticker running; the CLI exits
		// right after, so it is only a test-time leak.
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble/v2/vfs.(*diskHealthCheckingFS).startTickerLocked.func1"),
	)
}

const token = "whops_cli-test-token-0123456789abcdef"

var key = bytes.Repeat([]byte{3}, 32)

type server struct {
	*testnode.Node
	api  *httptest.Server
	once sync.Once
}

func startServer(t *testing.T, dir string) *server {
	t.Helper()
	tn := testnode.Start(t, testnode.Options{Dir: dir, SecretKey: key, Token: token,
		Tunnel: &admin.TunnelInfo{Addr: "gw.example:7443", Fingerprint: "sha256:abcd"}})
	s := &server{Node: tn, api: httptest.NewServer(tn.Admin)}
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	s.once.Do(func() {
		s.api.Close()
		s.Close()
	})
}

// run runs one CLI command line in process and returns its output and exit
// code.
func run(t *testing.T, server string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := 0
	cli.OsExiter = func(c int) { code = c }
	cli.ErrWriter = &errOut
	app := &cli.App{Name: "webhookops", Commands: Commands(admin.OfflineTokens{}), Writer: &out, ErrWriter: &errOut, ExitErrHandler: nil}
	full := append([]string{"webhookops"}, args...)
	full = append(full[:3:3], append([]string{"--server", server, "--token", token}, full[3:]...)...)
	if args[0] == "audit" {
		full = append([]string{"webhookops", "audit", "--server", server, "--token", token}, args[1:]...)
	}
	if err := app.RunContext(context.Background(), PermuteArgs(full)); err != nil && code == 0 {
		code = 1
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestCommandsAgainstServer(t *testing.T) {
	s := startServer(t, t.TempDir())
	srv := s.api.URL
	var mu sync.Mutex
	var got []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Webhook-Id"))
		mu.Unlock()
	}))
	defer sink.Close()

	// Flags after arguments work.
	out, errOut, code := run(t, srv, "destinations", "create", "app", "--url", sink.URL, "--allow-private-network")
	if code != 0 || !strings.Contains(out, "signing secret: whsec_") {
		t.Fatalf("create destination: %d %s %s", code, out, errOut)
	}
	out, errOut, code = run(t, srv, "sources", "create", "shop", "--route", "app", "--json")
	if code != 0 {
		t.Fatalf("create source: %d %s", code, errOut)
	}
	var src admin.SourceOut
	if err := json.Unmarshal([]byte(out), &src); err != nil || len(src.Secrets) != 1 {
		t.Fatalf("--json source: %v %s", err, out)
	}

	body := `{"n":1}`
	req, _ := http.NewRequest("POST", s.Ingest.URL+"/in/shop", strings.NewReader(body))
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric([]byte(src.Secrets[0]), []byte(body)))
	req.Header.Set("X-Event-Id", "cli-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("ingest: %v %v", err, resp)
	}
	resp.Body.Close()

	var id string
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, _ = run(t, srv, "events", "list", "--status", "delivered", "--json")
		var p admin.Page[admin.EventOut]
		json.Unmarshal([]byte(out), &p)
		if len(p.Items) == 1 {
			id = p.Items[0].ID
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered event: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _, code = run(t, srv, "events", "list")
	if code != 0 || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, id) || !strings.Contains(out, "app:delivered(1)") {
		t.Fatalf("events table:\n%s", out)
	}
	out, _, code = run(t, srv, "events", "get", id)
	if code != 0 || !strings.Contains(out, "app: delivered") || !strings.Contains(out, "200") {
		t.Fatalf("event detail:\n%s", out)
	}
	out, errOut, code = run(t, srv, "replay", "event", id, "--reason", "cli test")
	if code != 0 || !strings.Contains(out, "completed: 1 deliveries of 1 events, 1 succeeded") {
		t.Fatalf("replay: %d\n%s\n%s", code, out, errOut)
	}
	mu.Lock()
	if len(got) != 2 || got[0] != id || got[1] != id {
		t.Fatalf("sink saw %v", got)
	}
	mu.Unlock()
	out, _, code = run(t, srv, "audit", "--action", "replay.*")
	if code != 0 || !strings.Contains(out, "replay.completed") || !strings.Contains(out, "replay.requested") {
		t.Fatalf("audit:\n%s", out)
	}

	// Exit codes.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"sources", "get", "nope"}, ExitNotFound, "no source"},
		{[]string{"sources", "create", "shop"}, ExitConflict, "already exists"},
		{[]string{"sources", "create", "x", "--provider", "paypal"}, ExitInvalid, "provider:"},
		{[]string{"sources", "get"}, ExitInvalid, "missing SLUG"},
		{[]string{"events", "list", "--since", "yesterday-ish"}, ExitInvalid, "--since"},
		{[]string{"replay", "bulk"}, ExitInvalid, "all"},
	} {
		_, errOut, code := run(t, srv, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d (%s), want %d with %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	_, errOut, code = run(t, "http://127.0.0.1:1", "sources", "list")
	if code != ExitConnection || !strings.Contains(errOut, "cannot reach the server") {
		t.Errorf("connection refused: %d %s", code, errOut)
	}
	var o, e bytes.Buffer
	cli.OsExiter = func(c int) { code = c }
	cli.ErrWriter = &e
	app := &cli.App{Commands: Commands(admin.OfflineTokens{}), Writer: &o, ErrWriter: &e}
	app.Run([]string{"webhookops", "sources", "list", "--server", srv, "--token", "whops_wrong"})
	if code != ExitAuth || !strings.Contains(e.String(), "refused the token") {
		t.Errorf("bad token: %d %s", code, e.String())
	}
}

// TestTokenOffline: with the server stopped, token create works on the
// data dir, and the token works once the server is back.
func TestTokenOffline(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	// While the server runs, the data dir is locked.
	_, _, code := run(t, s.api.URL, "token", "list", "--data-dir", dir)
	if code == 0 {
		t.Fatal("token list --data-dir worked while the server holds the dir")
	}
	s.stop()
	t.Setenv(wal.EnvSecretKey, "0303030303030303030303030303030303030303030303030303030303030303")
	out, errOut, code := run(t, "http://unused", "token", "create", "rescue", "--role", "read", "--data-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("offline create: %d %s", code, errOut)
	}
	var ct admin.CreatedToken
	if err := json.Unmarshal([]byte(out), &ct); err != nil || ct.Role != admin.RoleRead {
		t.Fatalf("created: %v %s", err, out)
	}
	s2 := startServer(t, dir)
	req, _ := http.NewRequest("GET", s2.api.URL+"/api/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer "+ct.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("offline-made token refused: %v %v", err, resp.Status)
	}
	resp.Body.Close()
}

func TestPermuteArgs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"webhookops destinations create app --url http://x --allow-private-network", "webhookops destinations create --url http://x --allow-private-network app"},
		{"webhookops token create viewer --role read", "webhookops token create --role read viewer"},
		{"webhookops sources get shop --json", "webhookops sources get --json shop"},
		{"webhookops events list --source=a x", "webhookops events list --source=a x"},
		{"webhookops serve --data-dir d", "webhookops serve --data-dir d"},
		{"webhookops audit --action x", "webhookops audit --action x"},
		{"webhookops sources get -- -weird", "webhookops sources get -- -weird"},
	} {
		got := strings.Join(PermuteArgs(strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while tail writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEventsTail(t *testing.T) {
	s := startServer(t, t.TempDir())
	srv := s.api.URL
	if _, errOut, code := run(t, srv, "sources", "create", "open", "--no-verify"); code != 0 {
		t.Fatal(errOut)
	}
	post := func(key string) {
		req, _ := http.NewRequest("POST", s.Ingest.URL+"/in/open", strings.NewReader(`{}`))
		req.Header.Set("X-Event-Id", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("ingest: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	post("old-1")
	post("old-2")

	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	app := &cli.App{Commands: Commands(admin.OfflineTokens{}), Writer: &out, ErrWriter: &out}
	go func() {
		done <- app.RunContext(ctx, []string{"webhookops", "events", "tail", "--server", srv, "--token", token, "--interval", "20ms", "--last", "1", "--json"})
	}()
	waitFor := func(n int) []admin.EventOut {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var evs []admin.EventOut
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var e admin.EventOut
				if json.Unmarshal([]byte(line), &e) == nil && e.ID != "" {
					evs = append(evs, e)
				}
			}
			if len(evs) >= n {
				return evs
			}
			if time.Now().After(deadline) {
				t.Fatalf("tail printed %q, want %d events", out.String(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first := waitFor(1)
	if first[0].IdempotencyKey != "old-2" {
		t.Fatalf("--last 1 showed %+v", first)
	}
	post("new-1")
	post("new-2")
	evs := waitFor(3)
	cancel()
	<-done
	var keys []string
	for _, e := range evs {
		keys = append(keys, e.IdempotencyKey)
	}
	if strings.Join(keys, ",") != "old-2,new-1,new-2" {
		t.Fatalf("tail printed %v", keys)
	}
}
