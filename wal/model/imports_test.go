package model

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeaf: the model is the bottom of the import graph. It may use the
// standard library only, so the API client, the CLI and every layer above
// can share it without linking storage, the actor runtime or QUIC.
func TestLeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) != 1 || deps[0] != "github.com/webhookops/webhookops/wal/model" {
		t.Fatalf("wal/model must depend on the standard library only; non-standard deps: %q", deps)
	}
}
