package admin

import (
	"strings"
	"testing"

	"github.com/webhookops/webhookops/wal"
)

// TestOfflineTokensRefuseAMember: a cluster member's tokens are written
// through the metadata shard; the offline commands refuse its data dir
// and change nothing.
func TestOfflineTokensRefuseAMember(t *testing.T) {
	dir := t.TempDir()
	db, err := wal.Open(dir, wal.Config{CacheSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MarkClusterMember(2); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := (OfflineTokens{}).CreateToken(dir, "ops", RoleAdmin, "test"); err == nil || !strings.Contains(err.Error(), "cluster member 2") {
		t.Fatalf("create on a member's dir: %v", err)
	}
	if err := (OfflineTokens{}).RevokeToken(dir, "ops", "test"); err == nil || !strings.Contains(err.Error(), "cluster member 2") {
		t.Fatalf("revoke on a member's dir: %v", err)
	}
	if toks, err := (OfflineTokens{}).ListTokens(dir); err != nil || len(toks) != 0 {
		t.Fatalf("tokens after refusals: %v %v", toks, err)
	}
}
