package bench

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestGoals(t *testing.T) {
	cases := []struct {
		name, transport, ordering string
		res                       ScenarioResult
		wantFigure                string
		wantOf                    float64 // 0: no figure to compare
		wantMet                   bool
	}{
		{name: ScenarioIngest, res: ScenarioResult{Ratio: 0.225}, wantFigure: goalRatio, wantOf: 0.5},
		{name: ScenarioIngest, res: ScenarioResult{Ratio: 0.45}, wantFigure: goalRatio, wantOf: 1, wantMet: true},
		{name: ScenarioIngest, res: ScenarioResult{Throughput: 5000}, wantFigure: goalRatio}, // no baseline run
		{name: ScenarioE2E, ordering: "parallel", res: ScenarioResult{Ratio: 0.2}, wantFigure: goalRatio, wantOf: 0.5},
		{name: ScenarioE2E, ordering: "ordered", res: ScenarioResult{Throughput: 679, Ratio: 0.1}, wantFigure: goalThroughput, wantOf: 679.0 / 3000},
		{name: ScenarioTunnelHTTP, transport: "tcp", res: ScenarioResult{Ratio: 0.6}, wantFigure: goalRatio, wantOf: 1.2, wantMet: true},
		{name: ScenarioTunnelTCP, transport: "quic", res: ScenarioResult{Throughput: 300, Extra: map[string]float64{extraRatioToQUIC: 0.4}}, wantFigure: goalRatioToQUIC, wantOf: 0.5},
		{name: ScenarioTunnelTCP, transport: "tcp", res: ScenarioResult{Throughput: 464, Ratio: 0.2}, wantFigure: goalThroughput, wantOf: 2, wantMet: true},
		{name: ScenarioTunnelTCP, res: ScenarioResult{Throughput: 464}}, // a forward given by hand: transport unknown
		{name: ScenarioRecovery, res: ScenarioResult{Throughput: 1}},
		{name: ScenarioDestinations, res: ScenarioResult{Throughput: 70, Ratio: 1.8}},
	}
	for _, c := range cases {
		res := c.res
		res.Name = c.name
		setGoal(&res, c.transport, c.ordering)
		switch {
		case c.wantFigure == "" && res.Goal != nil:
			t.Errorf("%s/%s: goal %+v, want none", c.name, c.transport, res.Goal)
		case c.wantFigure != "" && (res.Goal == nil || res.Goal.Figure != c.wantFigure || res.Goal.Why == ""):
			t.Errorf("%s/%s %s: goal %+v, want figure %s", c.name, c.transport, c.ordering, res.Goal, c.wantFigure)
		case res.OfGoal < c.wantOf-1e-9 || res.OfGoal > c.wantOf+1e-9 || res.GoalMet != c.wantMet:
			t.Errorf("%s/%s %s: of goal %v met %v, want %v %v", c.name, c.transport, c.ordering, res.OfGoal, res.GoalMet, c.wantOf, c.wantMet)
		}
	}
}

func TestTableShowsGoals(t *testing.T) {
	rep := &Report{Machine: machineFacts(context.Background()), Scenarios: []ScenarioResult{
		{Name: ScenarioIngest, Mode: "closed x64", Throughput: 5000, Unit: "req/s", BaselineThroughput: 24000, Ratio: 5000.0 / 24000},
		{Name: ScenarioTunnelTCP, Transport: "tcp", Mode: "closed x1", Throughput: 464, Unit: "MB/s", BaselineThroughput: 2000, Ratio: 0.232},
		{Name: ScenarioRecovery, Mode: "-", Throughput: 1, Unit: "ms"},
	}}
	for i := range rep.Scenarios {
		setGoal(&rep.Scenarios[i], rep.Scenarios[i].Transport, "parallel")
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"goal", "of goal", "ratio 0.45", "0.46", "tunnel-tcp/tcp", "232 MB/s", "2.00 met", "ingest: goal: 0.45 of a no-op handler"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines[2:5] {
		if len(l) != len(lines[1]) {
			t.Errorf("table rows are not aligned:\n%s", out)
		}
	}
}

func TestShowProgress(t *testing.T) {
	cases := []struct {
		quiet, json, stdout, stderr, want bool
	}{
		{stdout: true, stderr: true, want: true},
		{quiet: true, stdout: true, stderr: true},
		{json: true, stdout: true, stderr: true},
		{stdout: false, stderr: true}, // `bench all > report.txt`
		{stdout: true, stderr: false}, // `bench all 2> log`
		{},                            // piped or under CI
	}
	for _, c := range cases {
		if got := showProgress(c.quiet, c.json, c.stdout, c.stderr); got != c.want {
			t.Errorf("showProgress(quiet=%v json=%v stdout tty=%v stderr tty=%v) = %v", c.quiet, c.json, c.stdout, c.stderr, got)
		}
	}
}

// TestProcessCPU: this process's CPU time plus a child's (here itself, read
// from /proc) grows with work done.
func TestProcessCPU(t *testing.T) {
	self := []int{os.Getpid()}
	before, ok := processCPU(self)
	if runtime.GOOS != "linux" {
		t.Skip("CPU of other processes is read from /proc")
	}
	if !ok {
		t.Fatal("processCPU failed on Linux")
	}
	// Work until the CPU clock (10 ms ticks in /proc) has visibly moved,
	// however busy the machine is.
	for deadline := time.Now().Add(10 * time.Second); ; {
		after, _ := processCPU(self)
		if after-before >= 100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU grew by only %v in 10 s of work", after-before)
		}
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
	}
	selfOnly, _ := processCPU(nil)
	both, _ := processCPU(self)
	if both < selfOnly+selfOnly/2 {
		t.Fatalf("self %v, self counted twice %v: the /proc figure is missing", selfOnly, both)
	}
	if _, ok := processCPU([]int{1 << 30}); ok {
		t.Fatal("a process that does not exist was measured")
	}
}
