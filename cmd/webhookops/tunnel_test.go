package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/ingress/verify"
)

const e2eToken = "whops_tunnel-e2e-token-0123456789"

// received is one request the private app got.
type received struct {
	path   string
	header http.Header
	body   []byte
}

// TestTunnelEndToEnd runs the real server and the real agentd as child
// processes, all on loopback: it enrolls an agent through the admin API,
// starts agentd with the command the API answered, delivers a webhook to a
// mode-agent destination and checks it matches public delivery, moves a
// few MB through a forward created by the API, kill -9s the server and
// restarts it on the same data dir and ports (the agent must come back by
// itself), and finally rotates the agent's secret, which must cut the
// session at once.
func TestTunnelEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server and agentd as child processes")
	}
	start := time.Now()
	bins := buildCommands(t, "webhookops", "agentd")
	bin, agentdBin := bins[0], bins[1]
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))

	// The private app: every request it gets goes to got.
	got := make(chan received, 64)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{path: r.URL.Path, header: r.Header.Clone(), body: body}
	}))
	defer app.Close()
	appAddr := app.Listener.Addr().String()

	// A private TCP echo server, reached only through the forward.
	echoAddr := startEcho(t)

	dir := t.TempDir()
	secret := []byte("tunnel-e2e-source-secret")
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sources:
  - slug: s
    provider: generic
    secrets: [%q]
    routes:
      - destination: private
      - destination: public
destinations:
  - slug: private
    mode: agent
    agent: dev
    url: http://%s/hooks
    backoff_base: 1s
    backoff_max: 2s
    max_attempts: 100
  - slug: public
    url: http://%s/public
    allow_private_network: true
agents:
  - id: dev
    allowed_targets: [%q, %q]
`, secret, appAddr, appAddr, appAddr, echoAddr)), 0o600)

	ingestAddr, adminAddr, tunnelAddr, fwdAddr := freeAddr(t), freeAddr(t), freeUDP(t), freeAddr(t)
	serveArgs := []string{"--data-dir", filepath.Join(dir, "data"), "--config", cfg, "--admin-token", e2eToken, "--tunnel-addr", tunnelAddr}
	srv := startServe(t, bin, ingestAddr, adminAddr, serveArgs...)
	defer func() { srv.kill9() }()
	api := &apiClient{t: t, base: "http://" + adminAddr}

	// Enroll; run the answered command.
	var enr admin.Enrollment
	api.must(http.StatusCreated, "POST", "/api/v1/agents/dev/enrollment", map[string]any{"allowed_targets": []string{appAddr, echoAddr}}, &enr)
	args := strings.Fields(enr.Command)
	if len(args) < 2 || args[0] != "agentd" || args[1] != "join" || enr.Tunnel != tunnelAddr || enr.Created ||
		!slices.Contains(args, "--allow") || !strings.HasPrefix(enr.ServerFingerprint, "sha256:") {
		t.Fatalf("enrollment: %+v", enr)
	}
	agentLog := &logBuf{}
	agent := exec.Command(agentdBin, append(args[1:], "--allow", appAddr)...)
	agent.Stdout, agent.Stderr = agentLog, agentLog
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nserver log:\n%s\nagentd log:\n%s", append(args, srv.log, agentLog)...)
	}
	if !api.waitOnline("dev", true, 10*time.Second) {
		fail("the agent never came online")
	}
	t.Logf("agent online %v after start", time.Since(start).Round(time.Millisecond))

	// A webhook reaches the private app as public delivery would send it.
	body := []byte("{\"order\":1, \"note\":\"caf\u00e9 \\u2615\",\n  \"pad\":\"  \"}\r\n")
	id := postWebhook(t, ingestAddr, secret, body)
	var private, public *received
	for private == nil || public == nil {
		select {
		case r := <-got:
			switch r.path {
			case "/hooks":
				private = &r
			case "/public":
				public = &r
			}
		case <-time.After(10 * time.Second):
			fail("webhook %s not delivered (private %v, public %v)", id, private != nil, public != nil)
		}
	}
	if private.header.Get("Webhook-Id") != id || !bytes.Equal(private.body, body) {
		fail("private delivery: webhook-id %q (event %s), body %q", private.header.Get("Webhook-Id"), id, private.body)
	}
	if a, b := headerNames(private.header), headerNames(public.header); !slices.Equal(a, b) {
		fail("private delivery has headers %v, public %v", a, b)
	}
	for k := range private.header {
		switch k {
		case "Webhook-Signature", "Webhook-Timestamp", "X-Webhookops-Attempt": // per destination or attempt
		default:
			if !slices.Equal(private.header[k], public.header[k]) {
				fail("header %s: private %q, public %q", k, private.header[k], public.header[k])
			}
		}
	}

	// A forward created through the API carries a few MB intact.
	var fwd admin.ForwardOut
	api.must(http.StatusCreated, "POST", "/api/v1/forwards", map[string]any{"listen": fwdAddr, "agent": "dev", "target": echoAddr}, &fwd)
	if !fwd.AgentOnline {
		fail("forward: %+v", fwd)
	}
	if err := echoRoundTrip(fwdAddr, 8<<20); err != nil {
		fail("through the forward: %v", err)
	}
	t.Logf("webhook and 8 MiB forward done %v after start", time.Since(start).Round(time.Millisecond))

	// kill -9, restart at once on the same data dir and ports.
	srv.kill9()
	killed := time.Now()
	srv = startServe(t, bin, ingestAddr, adminAddr, serveArgs...)
	id2 := postWebhook(t, ingestAddr, secret, []byte(`{"order":2}`))
	deadline := time.After(40 * time.Second)
	for rejoined := false; !rejoined; {
		select {
		case r := <-got:
			rejoined = r.path == "/hooks" && r.header.Get("Webhook-Id") == id2
		case <-deadline:
			_, ev := api.call("GET", "/api/v1/events/"+id2, nil, nil)
			fail("after the restart, webhook %s never reached the private app: %s", id2, ev)
		}
	}
	t.Logf("agent rejoined and delivered %v after the kill", time.Since(killed).Round(time.Millisecond))
	if err := echoRoundTrip(fwdAddr, 1<<20); err != nil {
		fail("through the forward after the restart: %v", err)
	}
	var fwds admin.Page[admin.ForwardOut]
	api.must(http.StatusOK, "GET", "/api/v1/forwards", nil, &fwds)
	if len(fwds.Items) != 1 || fwds.Items[0].Listen != fwdAddr {
		fail("forwards after the restart: %+v", fwds)
	}

	// Rotating the secret cuts the live session before the answer; the
	// agent, still holding the old secret, is refused from then on.
	rotated := time.Now()
	api.must(http.StatusCreated, "POST", "/api/v1/agents/dev/enrollment", nil, &enr)
	if !api.waitOnline("dev", false, time.Second) {
		fail("the agent was still online 1s after its secret was rotated")
	}
	t.Logf("session cut %v after the rotation request", time.Since(rotated).Round(time.Millisecond))
	for !strings.Contains(agentLog.String(), "rotated or revoked") {
		if time.Since(rotated) > 10*time.Second {
			fail("agentd did not report its secret refused")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if online, _ := api.agent("dev"); online {
		fail("the agent came back with its old secret")
	}

	agent.Process.Signal(syscall.SIGTERM)
	srv.stop(t)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// startEcho runs a TCP echo server on loopback until the test ends.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// freeUDP picks a free loopback UDP port for the tunnel.
func freeUDP(t *testing.T) string {
	t.Helper()
	// The tunnel listens on UDP (QUIC) and on TCP (the fallback) at the same
	// port number, so the port must be free over both. It is picked below
	// the kernel's ephemeral range (32768 and up by default): a port taken
	// from ":0" is in that range, where another test's outgoing connection
	// could take its TCP side before the child binds it ("address already
	// in use" in a loaded run).
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000))
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", addr)
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	t.Fatal("no port free over both UDP and TCP")
	return ""
}

func postWebhook(t *testing.T, ingest string, secret, body []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+ingest+"/in/s", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Event-Type", "order.created")
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		EventID string `json:"event_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &r) != nil || r.EventID == "" {
		t.Fatalf("ingest: %d %s", resp.StatusCode, raw)
	}
	return r.EventID
}

func headerNames(h http.Header) []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// echoRoundTrip sends n random bytes to addr while reading the echo, and
// compares their SHA-256.
func echoRoundTrip(addr string, n int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, c, int64(n)); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("sha256 of %d bytes echoed differs", n)
	}
	return nil
}

// apiClient calls the child's admin API with the test token.
type apiClient struct {
	t    *testing.T
	base string
}

func (a *apiClient) call(method, path string, in, out any) (int, []byte) {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, a.base+path, body)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, raw
}

func (a *apiClient) must(want int, method, path string, in, out any) {
	a.t.Helper()
	if code, raw := a.call(method, path, in, out); code != want {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, raw)
	}
}

func (a *apiClient) agent(id string) (online bool, lastSeen time.Time) {
	a.t.Helper()
	var out admin.AgentOut
	a.must(http.StatusOK, "GET", "/api/v1/agents/"+url.PathEscape(id), nil, &out)
	return out.Online, out.LastSeen
}

// waitOnline polls until the agent's online state is want.
func (a *apiClient) waitOnline(id string, want bool, timeout time.Duration) bool {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if online, _ := a.agent(id); online == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTunnelUnauthenticatedCapFlags: the caps on tunnel connections that
// have not authenticated come from serve's flags (and their env vars): over
// --tunnel-max-unauthenticated-per-ip from one address, or over
// --tunnel-max-unauthenticated in total, a new TCP connection is closed at
// once, while those within the caps are kept waiting for their handshake.
func TestTunnelUnauthenticatedCapFlags(t *testing.T) {
	bin := buildBinary(t)
	tunnelAddr := freeUDP(t)
	c := startServeOpts(t, bin, freeAddr(t), freeAddr(t), serveOpts{
		args: []string{"--data-dir", filepath.Join(t.TempDir(), "data"), "--admin-token", e2eToken,
			"--tunnel-addr", tunnelAddr, "--tunnel-max-unauthenticated", "2"},
		env: []string{"WEBHOOKOPS_TUNNEL_MAX_UNAUTHENTICATED_PER_IP=1"},
	})
	defer c.stop(t)
	idle := func(ip byte) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}
		conn, err := d.Dial("tcp", tunnelAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// closed reports whether the server closed conn within wait rather
	// than keeping it for its handshake.
	closed := func(conn net.Conn, wait time.Duration) bool {
		conn.SetReadDeadline(time.Now().Add(wait))
		_, err := conn.Read(make([]byte, 1))
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}
	a := idle(2)
	if !closed(idle(2), 5*time.Second) {
		t.Fatal("a second unauthenticated connection from one address was kept with the per-address cap at 1")
	}
	b := idle(3)
	if !closed(idle(4), 5*time.Second) {
		t.Fatal("a third unauthenticated connection was kept with the total cap at 2")
	}
	for _, conn := range []net.Conn{a, b} {
		if closed(conn, 200*time.Millisecond) {
			t.Fatal("a connection within the caps was closed")
		}
	}
}
