package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
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

func TestWeakBootstrapTokenRefused(t *testing.T) {
	for _, tc := range []struct {
		tok string
		ok  bool
	}{
		{"x", false},
		{"whops_short-token-012", false},
		{strings.Repeat("ab", 20), false},                // 40 characters, 2 distinct
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0123456", false}, // 8 distinct
		{"whops_test-bootstrap-token-0123456789", true},
		{"6Jz0v1qk3W8y9Xb2LrT5sN7uMhPgQdEa", true}, // 32 random base64
		{"6Jz0v1qk3W8y9Xb2LrT5 N7uMhPgQdEa1", false},
	} {
		err := CheckBootstrapToken(tc.tok)
		if (err == nil) != tc.ok {
			t.Errorf("CheckBootstrapToken(%q) = %v, want ok=%v", tc.tok, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--admin-token") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
	db, err := wal.Open(t.TempDir(), wal.Config{Partitions: 2, CacheSize: 8 << 20, SecretKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	node, err := actors.Start(actors.Config{DB: db, Deliverer: delivery.NewClient(delivery.Options{}), Shards: 1, DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if adm, err := New(Config{Node: node, BootstrapToken: "x"}); err == nil {
		adm.Close()
		t.Fatal("admin.New accepted a one-character --admin-token")
	}
}

// TestAPIFailedAuthSlowedPerAddress: past LoginFreeFailures bad tokens
// from one address, that address gets 429 + Retry-After even with the
// right token, until the delay passes; other addresses are not affected.
func TestAPIFailedAuthSlowedPerAddress(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.adm.logins = NewLoginLimiter(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	do := func(addr, tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/sources", nil)
		r.RemoteAddr = addr
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		e.adm.ServeHTTP(w, r)
		return w
	}
	const bad = "203.0.113.7:40000"
	for i := range LoginFreeFailures {
		if w := do(bad, fmt.Sprintf("whops_guess-%d", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, w.Code)
		}
	}
	w := do("203.0.113.7:40001", testToken)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after %d failures, right token from the same address: %d %q", LoginFreeFailures, w.Code, w.Header().Get("Retry-After"))
	}
	if w := do("198.51.100.9:5000", testToken); w.Code != http.StatusOK {
		t.Fatalf("another address: %d", w.Code)
	}
	mu.Lock()
	now = now.Add(LoginDelay(LoginFreeFailures) + time.Second)
	mu.Unlock()
	if w := do(bad, "whops_guess-again"); w.Code != http.StatusUnauthorized {
		t.Fatalf("after the wait, a guess: %d", w.Code)
	}
	// That failure doubled the wait.
	if w := do(bad, testToken); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "3" {
		t.Fatalf("after one more failure: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	mu.Lock()
	now = now.Add(LoginDelay(LoginFreeFailures+1) + time.Second)
	mu.Unlock()
	if w := do(bad, testToken); w.Code != http.StatusOK {
		t.Fatalf("after the wait, right token: %d", w.Code)
	}
}

func TestLoginDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{0: 0, LoginFreeFailures - 1: 0, LoginFreeFailures: time.Second,
		LoginFreeFailures + 3: 8 * time.Second, LoginFreeFailures + 100: LoginMaxWait} {
		if got := LoginDelay(n); got != want {
			t.Errorf("LoginDelay(%d) = %v, want %v", n, got, want)
		}
	}
}
