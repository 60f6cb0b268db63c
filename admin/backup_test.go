package admin

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/admin/backup"
	"github.com/webhookops/webhookops/wal"
)

// fetchBackup posts a backup request and unpacks the answer into a new
// directory.
func (e *env) fetchBackup(query string) (*backup.Manifest, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.api.URL+"/api/v1/backup"+query, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != backup.ContentType {
		e.t.Fatalf("backup: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	dir := e.t.TempDir()
	m, err := backup.Extract(resp.Body, dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return m, dir
}

// TestBackupEndpoint: the backup holds the events, their counts and the
// key's id, not the key; the key only when asked; a read-only token and a
// second concurrent backup are refused; each backup is audited.
func TestBackupEndpoint(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	for _, k := range []string{"k1", "k2", "k3"} {
		e.ingest("shop", secret, k, `{"a":1}`)
	}

	m, dir := e.fetchBackup("")
	key := e.db.SecretKey()
	if m.Stats.Events != 3 || m.Stats.Partitions != 8 || m.SecretKeyIncluded || m.SecretKeyID != wal.KeyID(key) ||
		len(m.Stats.Config["sources"]) != 1 || len(m.Stats.Config["destinations"]) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	if m.Has(backup.SecretKeyName) {
		t.Fatal("the secret key is in a backup that did not ask for it")
	}
	keyHex := []byte(hex.EncodeToString(key))
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if b, _ := os.ReadFile(p); !d.IsDir() && (bytes.Contains(b, keyHex) || bytes.Contains(b, key)) {
			t.Errorf("%s holds the secret key", p)
		}
		return nil
	})
	if entries, _ := os.ReadDir(filepath.Join(e.dir, backupsDir)); len(entries) != 0 {
		t.Fatalf("checkpoint left behind: %v", entries)
	}

	m2, dir2 := e.fetchBackup("?include_secret_key=true")
	if !m2.SecretKeyIncluded || !m2.Has(backup.SecretKeyName) {
		t.Fatalf("manifest %+v", m2)
	}
	if got, _ := os.ReadFile(filepath.Join(dir2, backup.SecretKeyName)); strings.TrimSpace(string(got)) != string(keyHex) {
		t.Fatalf("secret.key %q", got)
	}

	// The backup's store, opened as a data dir with the key, has the
	// events.
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(data, 0o700)
	if err := os.Rename(filepath.Join(dir, backup.PebbleDir), filepath.Join(data, wal.PebbleDir)); err != nil {
		t.Fatal(err)
	}
	st, err := wal.VerifyRestored(data, key)
	if err != nil || st.Events != 3 {
		t.Fatalf("restored: %+v %v", st, err)
	}

	e.must(http.StatusBadRequest, "POST", "/api/v1/backup?include_secret_key=maybe", nil, nil)
	var tok CreatedToken
	e.must(http.StatusCreated, "POST", "/api/v1/tokens", map[string]string{"name": "viewer", "role": RoleRead}, &tok)
	if code, _ := e.callAs(tok.Secret, "POST", "/api/v1/backup", nil, nil); code != http.StatusForbidden {
		t.Fatalf("read-only token: %d", code)
	}
	e.adm.backupMu.Lock()
	code, _ := e.call("POST", "/api/v1/backup", nil, nil)
	e.adm.backupMu.Unlock()
	if code != http.StatusConflict {
		t.Fatalf("concurrent backup: %d", code)
	}

	items, _, err := e.db.ListAudit(0, 100, func(a *wal.AuditEntry) bool { return a.Action == "backup.created" })
	if err != nil || len(items) != 2 || items[0].Actor != "token:"+BootstrapTokenName {
		t.Fatalf("audit: %+v %v", items, err)
	}
	if items[0].Detail["include_secret_key"] != "true" || items[1].Detail["events"] != "3" {
		t.Fatalf("audit details: %+v", items)
	}
}
