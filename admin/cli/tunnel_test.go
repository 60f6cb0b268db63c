package cli

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/admin"
)

func TestAgentsEnrollAndForwards(t *testing.T) {
	s := startServer(t, t.TempDir())
	srv := s.api.URL

	out, errOut, code := run(t, srv, "agents", "enroll", "dev", "--allow", "127.0.0.1:3000", "--allow", "db.internal:5432")
	if code != 0 {
		t.Fatalf("enroll: %d %s", code, errOut)
	}
	secret := s.Node.Node.Snapshot().Agents["dev"].Secret
	want := "agentd join --tunnel gw.example:7443 --id dev --secret " + secret + " --server-fingerprint sha256:abcd --allow 127.0.0.1:3000 --allow db.internal:5432"
	if !strings.Contains(out, "enrolled new agent dev") || !strings.Contains(out, "\n    "+want+"\n") {
		t.Fatalf("enroll printed:\n%s\nwant the command %s", out, want)
	}

	// Again with --json and no --allow: a new secret, the targets kept.
	out, errOut, code = run(t, srv, "agents", "enroll", "dev", "--json")
	var e admin.Enrollment
	if code != 0 || json.Unmarshal([]byte(out), &e) != nil {
		t.Fatalf("enroll --json: %d %s %s", code, out, errOut)
	}
	if e.Created || e.Secret == secret || len(e.AllowedTargets) != 2 || !strings.Contains(e.Command, "--secret "+e.Secret) {
		t.Fatalf("re-enrollment: %+v", e)
	}
	if _, errOut, code = run(t, srv, "agents", "enroll", "dev", "--allow", "nope"); code != ExitInvalid || !strings.Contains(errOut, "allowed_targets[0]") {
		t.Fatalf("bad --allow: %d %s", code, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	out, errOut, code = run(t, srv, "forwards", "create", "--listen", listen, "--agent", "dev", "--target", "db.internal:5432")
	if code != 0 || !strings.Contains(out, "forwarding "+listen+" through agent dev to db.internal:5432") || !strings.Contains(out, "offline") {
		t.Fatalf("forwards create: %d %s %s", code, out, errOut)
	}
	if _, errOut, code = run(t, srv, "forwards", "create", "--listen", "127.0.0.1:1", "--agent", "dev", "--target", "10.1.1.1:22"); code != ExitInvalid || !strings.Contains(errOut, "target:") {
		t.Fatalf("forward to a target the agent does not allow: %d %s", code, errOut)
	}
	out, _, code = run(t, srv, "forwards", "list")
	if code != 0 || !strings.Contains(out, "LISTEN") || !strings.Contains(out, listen) {
		t.Fatalf("forwards list: %d\n%s", code, out)
	}
	out, _, code = run(t, srv, "forwards", "get", listen, "--json")
	var f admin.ForwardOut
	if code != 0 || json.Unmarshal([]byte(out), &f) != nil || f.Target != "db.internal:5432" {
		t.Fatalf("forwards get: %d %s", code, out)
	}
	// An IPv6 listen address travels escaped and comes back whole.
	if _, errOut, code = run(t, srv, "forwards", "get", "[::1]:5432"); code != ExitNotFound || !strings.Contains(errOut, `"[::1]:5432"`) {
		t.Fatalf("forwards get of an IPv6 address: %d %s", code, errOut)
	}
	if out, _, code = run(t, srv, "forwards", "delete", listen); code != 0 || !strings.Contains(out, "deleted forward "+listen) {
		t.Fatalf("forwards delete: %d %s", code, out)
	}
	if _, _, code = run(t, srv, "forwards", "delete", listen); code != ExitNotFound {
		t.Fatalf("second delete: %d", code)
	}
}
