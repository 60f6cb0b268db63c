package admin

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
)

// TestTokenCheckDuringRevocation checks a token while other tokens are
// revoked and created: every check must find the token's own principal,
// whatever list swap happens during it (defect 4: the check indexed a list
// it had loaded again, which a revocation may have shortened: a wrong
// principal or an index panic).
func TestTokenCheckDuringRevocation(t *testing.T) {
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 2, CacheSize: 8 << 20, SecretKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts, err := loadTokens(db, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const others = 64
	for i := range others {
		if _, _, err := ts.create(fmt.Sprintf("other-%02d", i), RoleRead, "test", now); err != nil {
			t.Fatal(err)
		}
	}
	// The checked token comes last, so every revocation shortens the list
	// in front of it while a check loops over it.
	secret, _, err := ts.create("watched", RoleAdmin, "test", now)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				p, ok := ts.check(secret)
				if !ok || p.name != "watched" || p.role != RoleAdmin {
					errs <- fmt.Errorf("check = %+v, %v; want watched/admin", p, ok)
					return
				}
			}
		}()
	}
	for i := range others {
		if err := ts.revoke(fmt.Sprintf("other-%02d", i), "test", now); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if _, _, err := ts.create(fmt.Sprintf("late-%02d", i), RoleRead, "test", now); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, ok := ts.check(secret); !ok {
		t.Fatal("the watched token no longer checks")
	}
	if _, ok := ts.check("whops_never-issued"); ok {
		t.Fatal("an unknown token checked")
	}
}
