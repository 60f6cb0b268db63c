package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/webhookops/webhookops/"

// layers is the one-way import rule of DESIGN.md: cmd → admin → ingress →
// actors → wal → wal/model, with tunnelproto a leaf beside them that
// agentd and the engine's tunnel adapter use. A package belongs to the
// layer with the longest matching prefix and may import its own layer and
// the layers listed. The API's client side is its own layers, so it links
// neither the server nor storage.
var layers = []struct {
	prefix string
	may    []string
}{
	{"wal/model", nil},
	{"tunnelproto", nil},
	{"wal", []string{"wal/model"}},
	{"actors", []string{"wal", "wal/model", "tunnelproto"}},
	{"ingress", []string{"actors", "wal", "wal/model"}},
	{"admin/api", []string{"wal/model"}},
	{"admin/client", []string{"admin/api", "wal/model"}},
	{"admin/cli", []string{"admin/client", "admin/api", "wal/model"}},
	{"admin/config", []string{"wal/model"}},
	{"admin", []string{"admin/api", "admin/config", "ingress", "actors", "wal", "wal/model", "tunnelproto"}},
	{"agentd", []string{"tunnelproto"}},
	{"bench", []string{"admin/client", "admin/api", "tunnelproto", "agentd", "wal/model"}},
	// Shared by both mains; it links only urfave/cli.
	{"cmd/internal", nil},
	{"cmd/agentd", []string{"agentd", "tunnelproto", "cmd/internal"}},
	{"cmd/webhookops", []string{"admin", "admin/api", "admin/cli", "admin/client", "admin/config", "ingress", "actors", "wal", "wal/model", "tunnelproto", "bench", "cmd/internal"}},
}

// layerOf is the layer a package (path inside the module) belongs to.
func layerOf(pkg string) (string, bool) {
	best := ""
	for _, l := range layers {
		if (pkg == l.prefix || strings.HasPrefix(pkg, l.prefix+"/")) && len(l.prefix) > len(best) {
			best = l.prefix
		}
	}
	return best, best != ""
}

// TestLayering checks every package's imports (tests aside) against
// layers: nothing imports a package above it.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 15 {
		t.Fatalf("go list found %d packages:\n%s", len(lines), out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		from, ok := layerOf(pkg)
		if !ok {
			t.Errorf("package %s is in no layer: add it to the table", pkg)
			continue
		}
		var may []string
		for _, l := range layers {
			if l.prefix == from {
				may = l.may
			}
		}
		for _, imp := range f[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			to, _ := layerOf(dep)
			if to != from && !slices.Contains(may, to) {
				t.Errorf("%s (layer %s) imports %s (layer %s), which it may not", pkg, from, dep, to)
			}
		}
	}
}

// TestLayerTable: the table itself is one-way (no layer may import one
// that may import it back).
func TestLayerTable(t *testing.T) {
	may := map[string][]string{}
	for _, l := range layers {
		may[l.prefix] = l.may
	}
	var reaches func(from, to string, seen map[string]bool) bool
	reaches = func(from, to string, seen map[string]bool) bool {
		for _, m := range may[from] {
			if m == to {
				return true
			}
			if !seen[m] {
				seen[m] = true
				if reaches(m, to, seen) {
					return true
				}
			}
		}
		return false
	}
	for _, l := range layers {
		for _, m := range l.may {
			if _, ok := may[m]; !ok {
				t.Errorf("layer %s names unknown layer %s", l.prefix, m)
			}
		}
		if reaches(l.prefix, l.prefix, map[string]bool{}) {
			t.Errorf("layer %s can reach itself: the table has a cycle", l.prefix)
		}
	}
}
