package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// shortOptions is a run of about a second per phase: enough for every
// figure to be filled in, never a measurement of speed.
func shortOptions(scenarios ...string) Options {
	return Options{
		Scenarios:      scenarios,
		Rate:           200,
		Concurrency:    8,
		Duration:       time.Second,
		Warmup:         -1,
		Requests:       100_000,
		Baseline:       true,
		BodySize:       256,
		RequestTimeout: 10 * time.Second,
		DrainTimeout:   30 * time.Second,
		Events:         300,
		Destinations:   200,
	}
}

// checkComplete fails unless the figures every scenario must have are there.
func checkComplete(t *testing.T, rep *Report, wantBaseline bool) {
	t.Helper()
	if rep.Machine.Cores == 0 || rep.Machine.GoVersion == "" {
		t.Errorf("machine facts missing: %+v", rep.Machine)
	}
	for _, s := range rep.Scenarios {
		if s.Error != "" {
			t.Errorf("%s: %s", s.Name, s.Error)
		}
		if s.Throughput <= 0 || s.Unit == "" || s.Count <= 0 || s.Mode == "" {
			t.Errorf("%s: throughput %v %q, count %d, mode %q: incomplete", s.Name, s.Throughput, s.Unit, s.Count, s.Mode)
		}
		if s.Errors != 0 {
			t.Errorf("%s: %d errors, first: %s", s.Name, s.Errors, s.FirstError)
		}
		if s.Name != ScenarioDestinations {
			if l := s.Latency; l.P50 <= 0 || l.P90 < l.P50 || l.P99 < l.P90 || l.P999 < l.P99 || l.Max < l.P999 {
				t.Errorf("%s: latency %+v is not a filled, ordered set of percentiles", s.Name, l)
			}
		}
		if wantBaseline && s.Name != ScenarioRecovery {
			if s.BaselineThroughput <= 0 || s.Ratio <= 0 {
				t.Errorf("%s: baseline %v ratio %v: missing", s.Name, s.BaselineThroughput, s.Ratio)
			}
		}
	}
}

// fakeServer is the test binary, which TestMain turns into a fake serve when
// fakeServeEnv is set (it is, for every child of the tests).
func fakeServer(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestScenariosAgainstFakeServer drives every child-starting scenario through
// its whole life (start, ready, load, kill -9, restart, RSS, SIGTERM) against
// the test binary acting as `webhookops serve`.
func TestScenariosAgainstFakeServer(t *testing.T) {
	t.Parallel()
	bin := fakeServer(t)
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
			s := rep.Scenarios[0]
			switch name {
			case ScenarioRecovery:
				for _, k := range []string{"restart_to_ready_ms", "restart_to_first_delivery_ms", "restart_to_drained_ms"} {
					if s.Extra[k] <= 0 {
						t.Errorf("recovery: %s = %v", k, s.Extra[k])
					}
				}
				if s.Extra["backlog_events"] <= 0 || float64(s.Count) != s.Extra["backlog_events"] {
					t.Errorf("recovery: backlog %v, delivered %d; want all of it delivered", s.Extra["backlog_events"], s.Count)
				}
			case ScenarioIngest:
				// The scenario fails by itself if the paused destination
				// delivered anything.
				if s.Measures != ingestMeasures {
					t.Errorf("ingest: measures %q, want %q", s.Measures, ingestMeasures)
				}
			case ScenarioE2E:
				if s.Extra["accepted"] != float64(s.Count) {
					t.Errorf("e2e: %v accepted, %d delivered", s.Extra["accepted"], s.Count)
				}
			case ScenarioDestinations:
				if s.Extra["kb_per_destination"] == 0 || s.Extra["ready_ms"] <= 0 {
					t.Errorf("destinations: extras %v", s.Extra)
				}
			}
			// CPU per request or delivery of each side, the server child's
			// included in ours.
			if x := s.Extra; (name == ScenarioIngest || name == ScenarioE2E) &&
				(x[extraCPU]+x[extraCPUDelivery] <= 0 || x[extraBaselineCPU] <= 0 || x[extraCPURatio] <= 0) {
				t.Errorf("%s: no CPU figures in %v", name, x)
			}
		})
	}
}

// TestTargetMode runs ingest and e2e against an already running gateway.
func TestTargetMode(t *testing.T) {
	t.Parallel()
	sinkAddr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	cfg := serverConfig("bench", "benchsecret", []string{"sink"}, []destConfig{{
		slug: "sink", url: "http://" + sinkAddr + "/hook", ordering: "parallel", maxInFlight: 8,
		timeout: 5 * time.Second, maxAttempts: 3, backoffBase: 100 * time.Millisecond,
	}})
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ingestAddr, adminAddr, err := fakeAddrs()
	if err != nil {
		t.Fatal(err)
	}
	g, err := startFakeGateway(dir, cfgPath, ingestAddr, adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	opts := shortOptions(ScenarioIngest, ScenarioE2E)
	opts.Target = "http://" + ingestAddr
	opts.SinkAddr = sinkAddr
	opts.Max = true
	opts.Warmup = 200 * time.Millisecond
	opts.Duration = 500 * time.Millisecond
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, rep, true)

	for _, name := range []string{ScenarioRecovery, ScenarioDestinations} {
		opts := shortOptions(name)
		opts.Target = "http://" + ingestAddr
		if _, err := Run(context.Background(), opts); err == nil {
			t.Errorf("%s against --target: no error, want a refusal", name)
		}
	}
	opts = shortOptions(ScenarioE2E)
	opts.Target = "http://" + ingestAddr
	if _, err := Run(context.Background(), opts); err == nil {
		t.Error("e2e against --target without --sink-addr: no error")
	}
}

// TestTunnelScenariosDirectHalf: the tunnel is not there yet; the direct
// baseline must still be measured and the error must say why.
func TestTunnelScenariosDirectHalf(t *testing.T) {
	t.Parallel()
	opts := shortOptions(ScenarioTunnelHTTP, ScenarioTunnelTCP)
	opts.Duration = 500 * time.Millisecond
	opts.Requests = 2000
	rep, err := Run(context.Background(), opts)
	if !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("tunnel scenarios: %v, want ErrNotAvailable", err)
	}
	for _, s := range rep.Scenarios {
		if s.BaselineThroughput <= 0 || s.BaselineLatency == nil || s.BaselineLatency.P50 <= 0 || s.Error == "" {
			t.Errorf("%s: direct %v latency %+v error %q: the direct half is missing", s.Name, s.BaselineThroughput, s.BaselineLatency, s.Error)
		}
	}
}

func TestServerBinWithoutServe(t *testing.T) {
	// /bin/true exits 0 and prints nothing: a binary with no serve command.
	if _, err := serverBin(context.Background(), "/bin/true"); !errors.Is(err, ErrServerUnavailable) {
		t.Fatalf("serverBin(/bin/true) = %v, want ErrServerUnavailable", err)
	}
}

// relay is a TCP forward standing in for the tunnel: every connection it
// accepts is piped to target.
type relay struct {
	ln net.Listener
	wg sync.WaitGroup
	mu sync.Mutex // guards conns
	cs []net.Conn
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	r.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.cs = append(r.cs, in, out)
			r.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			r.wg.Go(func() { pipe(out, in) })
			r.wg.Go(func() { pipe(in, out) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.cs {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// TestTunnelScenariosThroughAForward runs both tunnel scenarios through a
// hand-made forward (here a plain TCP relay) with the direct baseline.
func TestTunnelScenariosThroughAForward(t *testing.T) {
	t.Parallel()
	for _, name := range []string{ScenarioTunnelHTTP, ScenarioTunnelTCP} {
		t.Run(name, func(t *testing.T) {
			appAddr, err := freeLoopbackAddr()
			if err != nil {
				t.Fatal(err)
			}
			fwd := startRelay(t, appAddr)
			opts := shortOptions(name)
			opts.Duration = 500 * time.Millisecond
			opts.Requests = 2000
			opts.AppAddr = appAddr
			opts.ForwardAddr = fwd.ln.Addr().String()
			rep, err := Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, rep, true)
		})
	}
}

// TestCancelStopsPromptly: Ctrl-C in the middle of a long phase ends the run
// quickly, with the child server stopped (goleak and the test's own exit
// check the rest).
func TestCancelStopsPromptly(t *testing.T) {
	t.Parallel()
	opts := shortOptions(ScenarioIngest)
	opts.ServerBin = fakeServer(t)
	opts.Duration = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	rep, err := Run(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("cancelled run took %v to return", d)
	}
	if rep == nil || len(rep.Scenarios) != 1 {
		t.Fatalf("cancelled run returned no partial report: %+v", rep)
	}
}

// TestIngestRounds: ingest with the baseline in alternating rounds, with
// the CPU each side costs.
func TestIngestRounds(t *testing.T) {
	t.Parallel()
	opts := shortOptions(ScenarioIngest)
	opts.ServerBin = fakeServer(t)
	opts.Rounds = 3
	opts.Warmup = 100 * time.Millisecond
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, rep, true)
	s := rep.Scenarios[0]
	if !strings.HasSuffix(s.Mode, "3 rounds") {
		t.Errorf("mode %q does not say it ran in rounds", s.Mode)
	}
	// CPU per request of each side, the server child's included in ours.
	if x := s.Extra; x[extraCPU] <= 0 || x[extraBaselineCPU] <= 0 || x[extraCPURatio] <= 0 {
		t.Errorf("no CPU figures in %v", x)
	}
}
