package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/api"
)

// adminAs sends one admin API request to a member with token and returns
// the status and body.
func adminAs(nd *clusterNode, method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+nd.admin+"/api/v1"+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// eventually retries f every 50 ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantStatus is a check for eventually: path on nd with token answers code.
func wantStatus(nd *clusterNode, method, path, token string, code int) func() error {
	return func() error {
		got, body, err := adminAs(nd, method, path, token, nil)
		if err != nil {
			return err
		}
		if got != code {
			return fmt.Errorf("%s %s on member %d: %d, want %d: %s", method, path, nd.id, got, code, body)
		}
		return nil
	}
}

// TestClusterReplicatesConfig: config objects and tokens written through
// the admin API of one member reach every member through the metadata
// shard. A source, a destination and a token created on member 1 serve an
// ingest on member 3 that is delivered (from whichever member owns the
// destination's partition) with the token authenticating on member 3; a
// token revoked on member 2 is refused on member 1; a member killed with
// -9 while changes are made catches up when it comes back, and refuses to
// start with another cluster's sealing key. No secret is in clear in any
// member's raft directory.
func TestClusterReplicatesConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers as child processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	var mu sync.Mutex
	got := map[string]int{} // path -> deliveries
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path]++
		mu.Unlock()
	}))
	defer sink.Close()
	delivered := func(path string) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if got[path] == 0 {
				return fmt.Errorf("nothing delivered to %s yet", path)
			}
			return nil
		}
	}
	// The file (on every member, as the README's start has it) holds an
	// unrelated source only.
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("sources:\n  - slug: base\n    provider: generic\n    verify: none\n"), 0o600)
	began := time.Now()
	nodes := startClusterNodes(t, bin, cfg, 3, false)
	m1, m2, m3 := nodes[0], nodes[1], nodes[2]
	eventually(t, 30*time.Second, "the file's source on member 3", wantStatus(m3, "GET", "/sources/base", e2eToken, 200))
	t.Logf("%v: three members up, the file replicated", time.Since(began).Round(time.Millisecond))

	const srcSecret, destHeader = "meta-test-source-secret-0123456789", "meta-test-header-credential-987654"
	create := func(nd *clusterNode, path string, body any, want int) []byte {
		t.Helper()
		code, out, err := adminAs(nd, "POST", path, e2eToken, body)
		if err != nil || code != want {
			t.Fatalf("POST %s on member %d: %d %v: %s", path, nd.id, code, err, out)
		}
		return out
	}
	t0 := time.Now()
	create(m1, "/destinations", map[string]any{"slug": "d", "url": sink.URL + "/d", "ordering": "parallel",
		"allow_private_network": true, "headers": map[string]string{"Authorization": destHeader}}, 201)
	create(m1, "/sources", map[string]any{"slug": "s", "provider": "generic", "secrets": []string{srcSecret},
		"routes": []map[string]any{{"destination": "d"}}}, 201)
	var tok api.CreatedToken
	json.Unmarshal(create(m1, "/tokens", map[string]any{"name": "ops", "role": "admin"}, 201), &tok)
	t.Logf("three writes on member 1 answered in %v", time.Since(t0).Round(time.Millisecond))

	// The token made on member 1 authenticates on member 3 at once (a
	// token member 3 does not know makes it catch up first), and member 3
	// has the source and destination too.
	if err := wantStatus(m3, "GET", "/destinations/d", tok.Secret, 200)(); err != nil {
		t.Fatalf("the new token on member 3, right after it was made on member 1: %v", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	eventually(t, 10*time.Second, "ingest on member 3", func() error {
		code, _, err := postSigned(client, m3.ingest, []byte(srcSecret), "first")
		if err != nil || code/100 != 2 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	eventually(t, 10*time.Second, "delivery of the event ingested on member 3", delivered("/d"))

	// Revoked on member 2: refused on member 1.
	if code, out, err := adminAs(m2, "DELETE", "/tokens/ops", e2eToken, nil); err != nil || code != 204 {
		t.Fatalf("revoke on member 2: %d %v %s", code, err, out)
	}
	eventually(t, 5*time.Second, "the revoked token refused on member 1", wantStatus(m1, "GET", "/sources", tok.Secret, 401))
	// Refusals travel back to the proposer as the usual errors.
	if code, out, _ := adminAs(m2, "DELETE", "/tokens/ops", e2eToken, nil); code != 404 {
		t.Fatalf("revoking it again on member 2: %d %s, want 404", code, out)
	}
	if code, out, _ := adminAs(m3, "POST", "/destinations", e2eToken, map[string]any{"slug": "d", "url": sink.URL + "/x"}); code != 409 {
		t.Fatalf("creating d again on member 3: %d %s, want 409", code, out)
	}

	// Two members create one slug at once: one wins, the other hears 409
	// (the check holds when the change is applied, not only when it was
	// proposed).
	for round := 0; round < 5; round++ {
		slug := fmt.Sprintf("race-%d", round)
		codes := make(chan int, 2)
		for _, nd := range []*clusterNode{m1, m2} {
			go func() {
				code, _, _ := adminAs(nd, "POST", "/destinations", e2eToken, map[string]any{"slug": slug, "url": sink.URL + "/" + slug})
				codes <- code
			}()
		}
		a, b := <-codes, <-codes
		if min(a, b) != 201 || max(a, b) != 409 {
			t.Fatalf("%s created on two members at once: %d and %d, want 201 and 409", slug, a, b)
		}
	}

	// The metadata shard's raft health on /metrics, as on member 1.
	req, _ := http.NewRequest("GET", "http://"+m1.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !regexp.MustCompile(`(?m)^webhookops_cluster_metadata_leader [1-3]$`).Match(b) || !strings.Contains(string(b), "webhookops_cluster_metadata_applied_index ") {
			t.Fatalf("/metrics lacks the metadata shard:\n%s", b)
		}
	}

	// Member 3 is killed; changes go on without it.
	m3.c.kill9()
	create(m2, "/destinations", map[string]any{"slug": "d2", "url": sink.URL + "/d2", "ordering": "ordered", "allow_private_network": true}, 201)
	if code, out, err := adminAs(m1, "PUT", "/sources/s", e2eToken, map[string]any{"slug": "s", "provider": "generic",
		"secrets": []string{srcSecret}, "routes": []map[string]any{{"destination": "d"}, {"destination": "d2"}}}); err != nil || code != 200 {
		t.Fatalf("routing s to d2 on member 1: %d %v %s", code, err, out)
	}
	create(m1, "/tokens", map[string]any{"name": "late", "role": "read"}, 201)

	// Another cluster's sealing key: refused at start, nothing changed.
	other := filepath.Join(dir, "other.key")
	if out, err := exec.Command(bin, "cluster", "seal-key", "--out", other).CombinedOutput(); err != nil {
		t.Fatalf("cluster seal-key: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", m3.dataDir, "--ingest-addr", freeAddr(t), "--admin-addr", freeAddr(t),
		"--config", cfg, "--cluster-addr", m3.raft, "--node-id", "3", "--initial-members", memberList(nodes),
		"--cluster-partitions", "4", "--admin-token", e2eToken, "--cluster-seal-key", other)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "sealing key") {
		t.Fatalf("member 3 with another sealing key: %v\n%s", err, out)
	}

	// Back with its key: it catches up on what it missed.
	m3.start(t, bin, cfg, memberList(nodes))
	eventually(t, 20*time.Second, "d2 on member 3 after its restart", wantStatus(m3, "GET", "/destinations/d2", e2eToken, 200))
	eventually(t, 5*time.Second, "the token made while member 3 was down", func() error {
		code, body, err := adminAs(m3, "GET", "/tokens", e2eToken, nil)
		if err != nil || code != 200 || !strings.Contains(string(body), `"late"`) || strings.Contains(string(body), `"ops"`) {
			return fmt.Errorf("%d %v %s", code, err, body)
		}
		return nil
	})
	eventually(t, 10*time.Second, "ingest on member 3 routed to d2", func() error {
		code, _, err := postSigned(client, m3.ingest, []byte(srcSecret), "second")
		if err != nil || code/100 != 2 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	eventually(t, 15*time.Second, "delivery to d2", delivered("/d2"))

	// No secret in clear in any member's raft logs and snapshots.
	for _, nd := range nodes {
		filepath.WalkDir(filepath.Join(nd.dataDir, "raft"), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, secret := range []string{srcSecret, destHeader, tok.Secret} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s holds a secret in clear", path)
				}
			}
			return nil
		})
	}
	t.Logf("%v: done", time.Since(began).Round(time.Millisecond))
}

// TestClusterInitialToken: a new cluster started without --admin-token
// (the README's three-node start) makes one initial admin token, printed
// by the member that made it, and it works on every member.
func TestClusterInitialToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers as child processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	seal := filepath.Join(dir, "seal.key")
	if out, err := exec.Command(bin, "cluster", "seal-key", "--out", seal).CombinedOutput(); err != nil {
		t.Fatalf("cluster seal-key: %v\n%s", err, out)
	}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{id: i + 1, raft: freeAddr(t), ingest: freeAddr(t), admin: freeAddr(t), dataDir: filepath.Join(dir, fmt.Sprint(i+1))}
	}
	for _, nd := range nodes {
		nd.c = startServe(t, bin, nd.ingest, nd.admin, "--data-dir", nd.dataDir, "--cluster-addr", nd.raft,
			"--node-id", fmt.Sprint(nd.id), "--initial-members", memberList(nodes), "--cluster-partitions", "4", "--cluster-seal-key", seal)
		defer nd.c.kill9()
	}
	tokenRE := regexp.MustCompile(`created admin API token "initial" for every member[^\n]*\n\s*(whops_[A-Za-z0-9_-]+)`)
	var tok string
	eventually(t, 20*time.Second, "the initial token printed", func() error {
		var found []string
		for _, nd := range nodes {
			if m := tokenRE.FindStringSubmatch(nd.c.log.String()); m != nil {
				found = append(found, m[1])
			}
		}
		if len(found) == 0 {
			return fmt.Errorf("no member printed it")
		}
		tok = found[0]
		return nil
	})
	for _, nd := range nodes {
		eventually(t, 5*time.Second, "the initial token on every member", wantStatus(nd, "GET", "/tokens", tok, 200))
	}
	// One token, printed once, whichever members raced to make it.
	time.Sleep(2 * time.Second)
	printed := 0
	for _, nd := range nodes {
		printed += len(tokenRE.FindAllString(nd.c.log.String(), -1))
	}
	code, body, err := adminAs(nodes[2], "GET", "/tokens", tok, nil)
	if err != nil || code != 200 || strings.Count(string(body), `"name"`) != 1 {
		t.Fatalf("tokens on member 3: %d %v %s", code, err, body)
	}
	if printed != 1 {
		t.Fatalf("the initial token was printed %d times", printed)
	}
}

// TestClusterConfigSnapshotCatchUp: a member that was down while more
// changes were made than the metadata shard keeps in its log catches up
// from a snapshot streamed by another member (sealed with the cluster key,
// restored with its own store key), then takes changes from the log again.
func TestClusterConfigSnapshotCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers as child processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("sources:\n  - slug: base\n    provider: generic\n    verify: none\n"), 0o600)
	nodes := startClusterNodes(t, bin, cfg, 3, false, "--log-level", "info") // to see the restore
	m1, m3 := nodes[0], nodes[2]
	eventually(t, 30*time.Second, "the file's source on member 3", wantStatus(m3, "GET", "/sources/base", e2eToken, 200))
	m3.c.kill9()

	// More entries than the shard's snapshot interval (1,000) plus the
	// log it keeps behind a snapshot (100): member 3 can only catch up
	// from a snapshot.
	const n = 1150
	began := time.Now()
	for i := 0; i < n; i++ {
		body := map[string]any{"slug": fmt.Sprintf("d%04d", i), "url": "https://example.com/hook"}
		if i%2 == 1 { // and deletes, so the snapshot is not just the sum of the entries
			code, out, err := adminAs(m1, "DELETE", fmt.Sprintf("/destinations/d%04d", i-1), e2eToken, nil)
			if err != nil || code != 204 {
				t.Fatalf("delete %d: %d %v %s", i-1, code, err, out)
			}
		}
		if code, out, err := adminAs(m1, "POST", "/destinations", e2eToken, body); err != nil || code != 201 {
			t.Fatalf("create %d: %d %v %s", i, code, err, out)
		}
	}
	t.Logf("%d changes through member 1 in %v", n+n/2, time.Since(began).Round(time.Millisecond))
	code, body, err := adminAs(m1, "GET", "/destinations", e2eToken, nil)
	if err != nil || code != 200 {
		t.Fatalf("list on member 1: %d %v", code, err)
	}
	var want api.Page[api.DestinationOut]
	json.Unmarshal(body, &want)

	restarted := time.Now()
	m3.start(t, bin, cfg, memberList(nodes))
	last := fmt.Sprintf("/destinations/d%04d", n-1)
	eventually(t, 30*time.Second, "the last destination on member 3", wantStatus(m3, "GET", last, e2eToken, 200))
	t.Logf("member 3 caught up %v after its restart", time.Since(restarted).Round(time.Millisecond))
	if !strings.Contains(m3.c.log.String(), "configuration restored from a metadata snapshot") {
		t.Fatalf("member 3 did not restore a snapshot:\n%s", m3.c.log)
	}
	code, body, err = adminAs(m3, "GET", "/destinations", e2eToken, nil)
	var got api.Page[api.DestinationOut]
	json.Unmarshal(body, &got)
	if err != nil || code != 200 || len(got.Items) != len(want.Items) {
		t.Fatalf("member 3 lists %d destinations, member 1 %d (%d %v)", len(got.Items), len(want.Items), code, err)
	}
	for i := range want.Items {
		if got.Items[i].Slug != want.Items[i].Slug || got.Items[i].SigningSecret != want.Items[i].SigningSecret {
			t.Fatalf("destination %d: member 3 %+v, member 1 %+v", i, got.Items[i], want.Items[i])
		}
	}
	// The log again after the snapshot.
	if code, out, err := adminAs(m1, "POST", "/destinations", e2eToken, map[string]any{"slug": "after", "url": "https://example.com/a"}); err != nil || code != 201 {
		t.Fatalf("create after: %d %v %s", code, err, out)
	}
	eventually(t, 5*time.Second, "a change after the snapshot on member 3", wantStatus(m3, "GET", "/destinations/after", e2eToken, 200))
}
