package client

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportGraph: the client and the CLI talk HTTP and decode the wire
// types of admin/api; they must never link the server's storage (Pebble),
// actor runtime (protoactor) or tunnel (quic-go), so a client binary stays
// small and cannot reach into a store.
func TestImportGraph(t *testing.T) {
	forbiddenTrees := []string{
		"github.com/cockroachdb/pebble",
		"github.com/asynkron/protoactor-go",
		"github.com/quic-go/quic-go",
		"github.com/webhookops/webhookops/actors",
		"github.com/webhookops/webhookops/tunnelproto",
	}
	forbidden := []string{
		"github.com/webhookops/webhookops/wal", // the store; wal/model is the leaf they share
		"github.com/webhookops/webhookops/admin",
	}
	for _, pkg := range []string{
		"github.com/webhookops/webhookops/admin/client",
		"github.com/webhookops/webhookops/admin/cli",
		"github.com/webhookops/webhookops/admin/api",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, pkg) || !slices.Contains(deps, "encoding/json") {
			t.Fatalf("go list -deps %s does not look right:\n%s", pkg, out)
		}
		for _, dep := range deps {
			if slices.Contains(forbidden, dep) || slices.ContainsFunc(forbiddenTrees, func(p string) bool { return strings.HasPrefix(dep, p) }) {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
