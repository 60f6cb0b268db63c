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
