package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMemberInitialToken: on a cluster member the initial token is made
// through the configuration's replication once the member has caught up,
// handed to OnInitialToken (not InitialToken), and works; tokens created
// and revoked through the API go the same way and the set follows them.
func TestMemberInitialToken(t *testing.T) {
	got := make(chan string, 2)
	e := newEnv(t, envOpts{replicated: true, onInitialToken: func(tok string) { got <- tok }})
	if e.token != "" {
		t.Fatalf("InitialToken on a member: %q", e.token)
	}
	select {
	case e.token = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no initial token")
	}
	if !strings.HasPrefix(e.token, TokenPrefix) {
		t.Fatalf("initial token %q", e.token)
	}
	var created struct {
		Secret string `json:"token"`
	}
	e.must(http.StatusCreated, "POST", "/api/v1/tokens", map[string]string{"name": "ops", "role": "read"}, &created)
	ops := &env{t: t, api: e.api, token: created.Secret, client: e.client}
	ops.must(http.StatusOK, "GET", "/api/v1/sources", nil, nil)
	e.must(http.StatusNoContent, "DELETE", "/api/v1/tokens/ops", nil, nil)
	if code, _ := ops.call("GET", "/api/v1/sources", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token: %d", code)
	}
	e.adm.Close() // the initial token's goroutine has ended (goleak)
	select {
	case tok := <-got:
		t.Fatalf("a second initial token: %q", tok)
	default:
	}
}

// TestMemberUnknownTokenCatchesUp: on a member, an unknown token makes the
// server catch up with the metadata shard before refusing it (a token
// made on another member a moment ago), at most once per 100 ms however
// many come.
func TestMemberUnknownTokenCatchesUp(t *testing.T) {
	e := newEnv(t, envOpts{replicated: true, bootstrap: testToken})
	bad := &env{t: t, api: e.api, token: "whops_not-a-token-of-this-cluster-0123456789", client: e.client}
	began := time.Now()
	for range 8 {
		if code, _ := bad.call("GET", "/api/v1/sources", nil, nil); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
			t.Fatalf("an unknown token: %d", code)
		}
	}
	n, most := e.shard.catchUps.Load(), 1+int64(time.Since(began)/(100*time.Millisecond))
	if n < 1 || n > most {
		t.Fatalf("%d catch-ups for 8 unknown tokens in %v, want 1 to %d", n, time.Since(began), most)
	}
	single := newEnv(t, envOpts{bootstrap: testToken}) // no catch-up on a single node
	if code, _ := (&env{t: t, api: single.api, token: bad.token, client: e.client}).call("GET", "/api/v1/sources", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("an unknown token on a single node: %d", code)
	}
}
