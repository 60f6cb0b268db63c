package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
		// agentd beside it, for the tunnel scenarios; they skip without it.
		agent := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, "agentd"), "./cmd/agentd")
		agent.Dir = root
		_ = agent.Run()
		if _, err := serverBin(ctx, bin); err != nil {
			realSkip = err.Error()
			return
		}
		// The server is written in parallel with the harness: one that builds
		// but cannot start right now is reported, not failed on. Its log
		// says whether it is the server or the harness's config at fault.
		if err := startsAndStops(ctx, bin); err != nil {
			realSkip = "it builds but does not start: " + err.Error()
			return
		}
		realBin = bin
	})
	if realSkip != "" {
		t.Skip("real server not available: " + realSkip)
	}
	return realBin
}

// startsAndStops starts bin serve with the config the ingest scenario writes
// and stops it.
func startsAndStops(ctx context.Context, bin string) error {
	sk, err := startSink("")
	if err != nil {
		return err
	}
	defer sk.Close()
	dir, err := os.MkdirTemp(binDir, "probe-")
	if err != nil {
		return err
	}
	cfg := serverConfig("bench", "benchsecret", []string{"sink"}, []destConfig{{
		slug: "sink", url: sk.hookURL(), ordering: "parallel", maxInFlight: 8,
		timeout: 5 * time.Second, maxAttempts: 3, backoffBase: 100 * time.Millisecond,
	}})
	spec, err := newChildSpec(bin, dir, cfg, nil)
	if err != nil {
		return err
	}
	c, err := spec.start()
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, time.Minute); err != nil {
		c.kill()
		return err
	}
	return c.stop(10 * time.Second)
}

// TestScenariosAgainstRealServer runs each child-starting scenario for about
// a second against the real `webhookops serve`: the harness and the server
// contract cannot drift apart unnoticed.
func TestScenariosAgainstRealServer(t *testing.T) {
	t.Parallel()
	bin := realServer(t)
	for _, name := range append(Scenarios[:len(Scenarios):len(Scenarios)], ScenarioE2E+"-ordered") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := shortOptions(name)
			if name == ScenarioE2E+"-ordered" {
				opts = shortOptions(ScenarioE2E)
				opts.Ordering = "ordered"
			}
			opts.ServerBin = bin
			rep, err := Run(context.Background(), opts)
			if errors.Is(err, ErrNotAvailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, rep, true)
			if x := rep.Scenarios[0].Extra; name == ScenarioE2E+"-ordered" && (x[extraSequentialCeiling] <= 0 || x[extraRatioToSequential] <= 0 || x[extraSequentialCeiling2Pro] <= 0 || x[extraRatioToSequential2Pro] <= 0) {
				t.Errorf("e2e ordered: no sequential ceiling in %v", x)
			}
			if name == ScenarioRecovery && rep.Scenarios[0].Extra["restart_to_drained_ms"] <= 0 {
				t.Errorf("recovery: no drain time in %v", rep.Scenarios[0].Extra)
			}
			if name == ScenarioTunnelHTTP || name == ScenarioTunnelTCP {
				// One row per transport, each with its goal.
				if len(rep.Scenarios) != 2 || rep.Scenarios[0].Transport != "quic" || rep.Scenarios[1].Transport != "tcp" {
					t.Fatalf("rows %+v, want one over quic and one over tcp", rep.Scenarios)
				}
				for _, s := range rep.Scenarios {
					if s.Goal == nil || s.OfGoal <= 0 {
						t.Errorf("%s: goal %+v of goal %v", s.label(), s.Goal, s.OfGoal)
					}
					if _, ok := s.Extra[extraOthersCores]; !ok && runtime.GOOS == "linux" {
						t.Errorf("%s: no %s in %v", s.label(), extraOthersCores, s.Extra)
					}
				}
				// Over QUIC, both bare-stream baselines beside the tunnel.
				if q := rep.Scenarios[0]; name == ScenarioTunnelTCP && (q.Extra["quic_mbps"] <= 0 || q.Extra["quic_2proc_mbps"] <= 0) {
					t.Errorf("%s: no bare QUIC figures in %v", q.label(), q.Extra)
				}
			}
		})
	}
}
