package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	realOnce sync.Once
	realBin  string
	realSkip string
)

// realServer builds ./cmd/webhookops once and returns the binary, or skips
// when it does not build or has no `serve` yet (it is written in parallel).
func realServer(t *testing.T) string {
	t.Helper()
	realOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(gomod)) == "" {
			realSkip = "no module root: " + string(gomod)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		bin := filepath.Join(binDir, "webhookops")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/webhookops")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			realSkip = "go build ./cmd/webhookops failed: " + err.Error() + "\n" + string(out)
			return
		}
		if _, err := serverBin(ctx, bin); err != nil {
			realSkip = err.Error()
			return
		}
		realBin = bin
	})
	if realSkip != "" {
		t.Skip("real server not available: " + realSkip)
	}
	return realBin
}

// TestScenariosAgainstRealServer runs each child-starting scenario for about
// a second against the real `webhookops serve`: the harness and the server
// contract cannot drift apart unnoticed.
func TestScenariosAgainstRealServer(t *testing.T) {
	bin := realServer(t)
	for _, name := range []string{ScenarioIngest, ScenarioE2E, ScenarioRecovery, ScenarioDestinations} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := shortOptions(name)
			opts.ServerBin = bin
			rep, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, rep, true)
			if name == ScenarioRecovery && rep.Scenarios[0].Extra["restart_to_drained_ms"] <= 0 {
				t.Errorf("recovery: no drain time in %v", rep.Scenarios[0].Extra)
			}
		})
	}
}
