package destsm

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestPure: the machine links nothing that could do its I/O for it: no
// storage, no actor runtime, no network. Only the standard library's
// computing packages and the model.
func TestPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == "github.com/webhookops/webhookops/wal/model", dep == "github.com/webhookops/webhookops/actors/internal/destsm":
		case strings.Contains(dep, "."):
			t.Errorf("destsm depends on %s", dep)
		case slices.Contains([]string{"net", "net/http", "os/exec", "database/sql"}, dep):
			t.Errorf("destsm depends on %s", dep)
		}
	}
}
