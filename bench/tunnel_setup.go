package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// benchAgentID is the agent the harness enrolls for the tunnel scenarios.
const benchAgentID = "bench-agent"

// tunnelSetup is a child server with a tunnel listener and a TCP forward to
// the app, and a child agentd enrolled with it and online.
type tunnelSetup struct {
	forwardAddr string
	server      *child
	agent       *child
	cleanup     func()
}

func (t *tunnelSetup) close() {
	if t.agent != nil {
		_ = t.agent.stop(10 * time.Second)
	}
	if t.server != nil {
		_ = t.server.stop(10 * time.Second)
	}
	t.cleanup()
}

// startTunnel starts what the tunnel scenarios measure: `serve` with
// --tunnel-addr and a forward (config `forwards:`) to appAddr through the
// agent bench-agent, the agent's secret minted through the admin API, and
// `agentd join` pinned to the fingerprint of the certificate the server
// wrote into its data dir. It returns ErrNotAvailable when the server or
// the agent binary cannot do this yet.
func (r *runner) startTunnel(ctx context.Context, name, appAddr string, probe func(ctx context.Context, forwardAddr string) error) (*tunnelSetup, error) {
	bin, err := serverBin(ctx, r.opts.ServerBin)
	if err != nil {
		return nil, err
	}
	if err := helpMentions(ctx, bin, []string{"serve", "--help"}, "--tunnel-addr", "--admin-token"); err != nil {
		return nil, notAvailable{err}
	}
	agentBin := r.opts.AgentBin
	if agentBin == "" {
		agentBin = filepath.Join(filepath.Dir(bin), "agentd")
		if _, err := os.Stat(agentBin); err != nil {
			if agentBin, err = exec.LookPath("agentd"); err != nil {
				return nil, notAvailable{fmt.Errorf("no agentd beside %s or on PATH (--agent-bin)", bin)}
			}
		}
	}
	agentFlags := []string{"--tunnel", "--server-fingerprint", "--secret-file", "--allow"}
	if r.transport != "" {
		agentFlags = append(agentFlags, "--transport")
	}
	if err := helpMentions(ctx, agentBin, []string{"join", "--help"}, agentFlags...); err != nil {
		return nil, notAvailable{err}
	}

	dir, cleanup, err := r.tempDir(name)
	if err != nil {
		return nil, err
	}
	t := &tunnelSetup{cleanup: cleanup}
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	if t.forwardAddr, err = freeLoopbackAddr(); err != nil {
		return nil, err
	}
	tunnelAddr, err := freeLoopbackUDPAddr()
	if err != nil {
		return nil, err
	}
	token := "bench-" + runPrefix() + runPrefix()
	cfg := fmt.Sprintf("agents:\n  - id: %s\n    allowed_targets: [%s]\nforwards:\n  - listen: %s\n    agent: %s\n    target: %s\n",
		strconv.Quote(benchAgentID), strconv.Quote(appAddr), strconv.Quote(t.forwardAddr), strconv.Quote(benchAgentID), strconv.Quote(appAddr))
	spec, err := newChildSpec(bin, dir, cfg, r.opts.ServerLog)
	if err != nil {
		return nil, err
	}
	spec.extraArgs = []string{"--tunnel-addr", tunnelAddr, "--admin-token", token}
	if t.server, err = spec.start(); err != nil {
		return nil, err
	}
	if err := t.server.waitReady(ctx, time.Minute); err != nil {
		return nil, err
	}
	admin := &adminClient{base: "http://" + spec.adminAddr + "/api/v1", token: token}
	var rot struct {
		Secret string `json:"secret"`
	}
	if err := admin.do(ctx, http.MethodPost, "/agents/"+benchAgentID+"/secret", nil, &rot); err != nil || rot.Secret == "" {
		return nil, fmt.Errorf("bench: mint the agent secret: %v", err)
	}
	fp, err := findFingerprint(spec.dataDir)
	if err != nil {
		return nil, err
	}
	secretFile := filepath.Join(dir, "agent.secret")
	if err := os.WriteFile(secretFile, []byte(rot.Secret+"\n"), 0o600); err != nil {
		return nil, err
	}
	args := []string{"join",
		"--tunnel", tunnelAddr, "--id", benchAgentID, "--secret-file", secretFile,
		"--server-fingerprint", fp, "--allow", appAddr, "--log-level", "warn",
	}
	if r.transport != "" {
		args = append(args, "--transport", r.transport)
	}
	if t.agent, err = startProcess(agentBin, args, filepath.Join(dir, "agent.log"), r.opts.ServerLog); err != nil {
		return nil, err
	}
	if err := waitTunnel(ctx, t, admin, probe, 30*time.Second); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

// notAvailable is a reason that is ErrNotAvailable without saying so twice.
type notAvailable struct{ reason error }

func (e notAvailable) Error() string   { return e.reason.Error() }
func (e notAvailable) Unwrap() []error { return []error{ErrNotAvailable, e.reason} }

// helpMentions runs bin args (a --help) and checks its output names every flag.
func helpMentions(ctx context.Context, bin string, args []string, flags ...string) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err := parent.Err(); err != nil {
		// Cancelled by the caller: the help text was cut short, not wrong.
		return err
	}
	for _, f := range flags {
		if !bytes.Contains(out, []byte(f)) {
			return fmt.Errorf("%s %s does not mention %s", bin, strings.Join(args, " "), f)
		}
	}
	return nil
}

// findFingerprint returns "sha256:<hex>" of the tunnel certificate the
// server wrote somewhere under its data dir.
func findFingerprint(dataDir string) (string, error) {
	var found string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "tunnel-cert.pem" {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	if err != nil || found == "" {
		return "", fmt.Errorf("bench: no tunnel-cert.pem under %s (%v)", dataDir, err)
	}
	b, err := os.ReadFile(found)
	if err != nil {
		return "", err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return "", fmt.Errorf("bench: no CERTIFICATE block in %s", found)
		}
		if blk.Type == "CERTIFICATE" {
			sum := sha256.Sum256(blk.Bytes)
			return "sha256:" + hex.EncodeToString(sum[:]), nil
		}
	}
}

// adminClient calls the admin API with a bearer token.
type adminClient struct {
	base, token string
}

func (a *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// waitTunnel waits until a probe through the forward reaches the app. It
// does not trust the admin API's "online" alone (the probe is what the
// scenario needs), but reports it when the tunnel never comes up.
func waitTunnel(ctx context.Context, t *tunnelSetup, admin *adminClient, probe func(context.Context, string) error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if lastErr = probe(ctx, t.forwardAddr); lastErr == nil {
			return nil
		}
		select {
		case <-t.agent.exited:
			return fmt.Errorf("bench: agentd exited (%v): %s", t.agent.waitErr, t.agent.logTail())
		case <-t.server.exited:
			return fmt.Errorf("bench: server exited (%v): %s", t.server.waitErr, t.server.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	var a struct {
		Online bool `json:"online"`
	}
	apiErr := admin.do(ctx, http.MethodGet, "/agents/"+benchAgentID, nil, &a)
	return fmt.Errorf("bench: nothing reached the app through the forward within %v (last: %v; admin API: online=%v %v); agent log: %s",
		timeout, lastErr, a.Online, apiErr, t.agent.logTail())
}
