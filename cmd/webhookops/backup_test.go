package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/backup"
	"github.com/webhookops/webhookops/wal"
)

// runCLI runs the binary with args and returns its combined output and
// whether it exited 0.
func runCLI(t *testing.T, bin string, env []string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err == nil
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish within 2 minutes:\n%s", args, out.String())
		return "", false
	}
}

// TestBackupWhileIngestingAndRestore ingests continuously, takes a backup
// through the admin API while ingest goes on, restores it into a new data
// dir, starts a node on it, and finds every event acknowledged before the
// backup began, each with the delivery state it had reached by then.
func TestBackupWhileIngestingAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/dead") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	dir := t.TempDir()
	secret := []byte("backup-test-secret")
	cfg := filepath.Join(dir, "webhookops.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sources:
  - slug: s
    provider: generic
    secrets: [%q]
    routes:
      - destination: ok
      - destination: dead
      - destination: held
destinations:
  - slug: ok
    url: %s/ok
    allow_private_network: true
  - slug: dead
    url: %s/dead
    max_attempts: 1
    allow_private_network: true
  - slug: held
    url: %s/ok
    allow_private_network: true
`, secret, sink.URL, sink.URL, sink.URL)), 0o600)
	dataA := filepath.Join(dir, "a")
	a := startServe(t, bin, freeAddr(t), freeAddr(t), "--data-dir", dataA, "--config", cfg, "--admin-token", e2eToken)
	apiA := &apiClient{t: t, base: "http://" + a.admin}
	// Paused: its deliveries stay pending, a state the restore must keep.
	apiA.must(http.StatusOK, "POST", "/api/v1/destinations/held/pause", nil, nil)

	// Ingest until told to stop (bounded in count and time).
	var (
		mu    sync.Mutex // guards acked
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		deadline := time.Now().Add(90 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := postWebhook(t, a.ingest, secret, []byte(fmt.Sprintf(`{"n":%d}`, i)))
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}
	})
	ackedSoFar := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), acked...)
	}
	for len(ackedSoFar()) < 150 {
		time.Sleep(10 * time.Millisecond)
	}

	// What was acknowledged before now, and the state each had reached;
	// the backup begins after this.
	before := ackedSoFar()
	state := map[string]map[string]string{}
	terminal := map[string]int{}
	for _, id := range before {
		var ev admin.EventOut
		apiA.must(http.StatusOK, "GET", "/api/v1/events/"+id, nil, &ev)
		state[id] = map[string]string{}
		for _, d := range ev.Deliveries {
			state[id][d.Destination] = string(d.Status)
			terminal[string(d.Status)]++
		}
	}
	backupDir := filepath.Join(dir, "backup")
	out, ok := runCLI(t, bin, nil, "backup", "--to", backupDir, "--server", "http://"+a.admin, "--token", e2eToken)
	if !ok {
		t.Fatalf("backup failed:\n%s\nserver:\n%s", out, a.log)
	}
	if n := len(ackedSoFar()); n <= len(before) {
		t.Fatalf("ingest did not go on during the backup (%d acknowledged before, %d after)", len(before), n)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	a.stop(t)
	t.Logf("%d events acknowledged before the backup began (states %v), %d in all; backup said:\n%s", len(before), terminal, len(ackedSoFar()), out)
	if terminal["delivered"] == 0 || terminal["dead_lettered"] == 0 || terminal["pending"] < len(before) {
		t.Fatalf("not every delivery state was there before the backup to check (%v)", terminal)
	}

	m, err := backup.Verify(backupDir)
	if err != nil {
		t.Fatal(err)
	}
	if m.SecretKeyIncluded || m.Has(backup.SecretKeyName) || !m.Has(backup.ConfigName) || m.Stats.Events < uint64(len(before)) {
		t.Fatalf("manifest: %+v", m)
	}

	// Restore refuses: no key, a non-empty target, a wrong key.
	dataB := filepath.Join(dir, "b")
	out, ok = runCLI(t, bin, []string{wal.EnvSecretKey + "="}, "restore", "--from", backupDir, "--data-dir", dataB)
	if ok || !strings.Contains(out, "--secret-key-file") {
		t.Fatalf("restore without a key: ok=%v\n%s", ok, out)
	}
	if _, err := os.Stat(dataB); err == nil {
		t.Fatal("a refused restore left the data dir behind")
	}
	out, ok = runCLI(t, bin, nil, "restore", "--from", backupDir, "--data-dir", dataA, "--secret-key-file", filepath.Join(dataA, wal.SecretKeyFile))
	if ok || !strings.Contains(out, "not empty") {
		t.Fatalf("restore over the old data dir: ok=%v\n%s", ok, out)
	}
	wrongKey := filepath.Join(dir, "wrong.key")
	wal.WriteSecretKeyFile(wrongKey, bytes.Repeat([]byte{9}, 32))
	out, ok = runCLI(t, bin, nil, "restore", "--from", backupDir, "--data-dir", dataB, "--secret-key-file", wrongKey)
	if ok || !strings.Contains(out, "sealed with") {
		t.Fatalf("restore with a wrong key: ok=%v\n%s", ok, out)
	}

	out, ok = runCLI(t, bin, nil, "restore", "--from", backupDir, "--data-dir", dataB, "--secret-key-file", filepath.Join(dataA, wal.SecretKeyFile))
	if !ok {
		t.Fatalf("restore failed:\n%s", out)
	}
	t.Logf("restore said:\n%s", out)

	// A node on the restored dir, without --config: the sources,
	// destinations and tokens come from the backup.
	b := startServe(t, bin, freeAddr(t), freeAddr(t), "--data-dir", dataB, "--admin-token", e2eToken)
	defer b.stop(t)
	apiB := &apiClient{t: t, base: "http://" + b.admin}
	for _, id := range before {
		var ev admin.EventOut
		if code, raw := apiB.call("GET", "/api/v1/events/"+id, nil, &ev); code != http.StatusOK {
			t.Fatalf("event %s, acknowledged before the backup began, is not in the restored node: %d %s", id, code, raw)
		}
		got := map[string]string{}
		for _, d := range ev.Deliveries {
			got[d.Destination] = string(d.Status)
		}
		for dest, was := range state[id] {
			// Settled states stay; pending ones may have settled since
			// (except at the paused destination, which keeps them).
			if now := got[dest]; now == "" || (was != "pending" || dest == "held") && now != was {
				t.Fatalf("event %s at %s: %q before the backup, %q restored", id, dest, was, now)
			}
		}
	}
	// Delivery goes on from where the backup left it: a source's secret
	// opened with the restored key, so new posts verify.
	postWebhook(t, b.ingest, secret, []byte(`{"after":"restore"}`))
}

// TestBackupWithSecretKey: --include-secret-key carries the key, and a
// restore needs nothing else.
func TestBackupWithSecretKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "a")
	a := startServe(t, bin, freeAddr(t), freeAddr(t), "--data-dir", data, "--config", unsignedConfig(t, dir), "--admin-token", e2eToken)
	hc := &http.Client{Timeout: 5 * time.Second}
	for range 3 {
		resp, err := hc.Post("http://"+a.ingest+"/in/demo", "application/json", strings.NewReader(fmt.Sprintf(`{"t":%d}`, time.Now().UnixNano())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("ingest: %d", resp.StatusCode)
		}
	}
	out, ok := runCLI(t, bin, nil, "backup", "--to", filepath.Join(dir, "bk"), "--include-secret-key", "--server", "http://"+a.admin, "--token", e2eToken)
	a.stop(t)
	if !ok || !strings.Contains(out, "includes the secret key") {
		t.Fatalf("backup: ok=%v\n%s", ok, out)
	}
	out, ok = runCLI(t, bin, []string{wal.EnvSecretKey + "="}, "restore", "--from", filepath.Join(dir, "bk"), "--data-dir", filepath.Join(dir, "b"))
	if !ok || !strings.Contains(out, "3 events") {
		t.Fatalf("restore: ok=%v\n%s", ok, out)
	}
	want, _ := os.ReadFile(filepath.Join(data, wal.SecretKeyFile))
	got, _ := os.ReadFile(filepath.Join(dir, "b", wal.SecretKeyFile))
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Fatal("the restored secret.key differs from the original")
	}
	// A backup that cannot reach the node leaves nothing behind.
	out, ok = runCLI(t, bin, nil, "backup", "--to", filepath.Join(dir, "bk2"), "--server", "http://127.0.0.1:1", "--token", e2eToken)
	if ok || !strings.Contains(out, "cannot reach") {
		t.Fatalf("backup of an unreachable node: ok=%v\n%s", ok, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "bk2")); err == nil {
		t.Fatal("a failed backup left its directory behind")
	}
}
