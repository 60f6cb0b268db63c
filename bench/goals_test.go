package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
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
		// The tunnel's goals are judged on CPU per unit, whatever the rates say.
		{name: ScenarioTunnelHTTP, transport: "tcp", res: ScenarioResult{Ratio: 0.6, Extra: map[string]float64{extraCPURatio: 0.45}}, wantFigure: extraCPURatio, wantOf: 0.9},
		{name: ScenarioTunnelHTTP, transport: "quic", res: ScenarioResult{Ratio: 0.3, Extra: map[string]float64{extraCPURatio: 0.5}}, wantFigure: extraCPURatio, wantOf: 1, wantMet: true},
		{name: ScenarioTunnelHTTP, transport: "quic", res: ScenarioResult{Ratio: 1.3}, wantFigure: extraCPURatio}, // no CPU figures (a forward given by hand)
		{name: ScenarioTunnelTCP, transport: "quic", res: ScenarioResult{Throughput: 300, Extra: map[string]float64{extraRatioToQUIC: 1.2, extraCPURatioToQUIC2: 0.4}}, wantFigure: extraCPURatioToQUIC2, wantOf: 0.5},
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
		{Name: ScenarioTunnelTCP, Transport: "quic", Mode: "closed x1", Throughput: 200, Unit: "MB/s", BaselineThroughput: 2000, Ratio: 0.1,
			Extra: map[string]float64{extraCPURatioToQUIC2: 0.72}},
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
	for _, want := range []string{"goal", "of goal", "ratio 0.45", "0.46", "tunnel-tcp/tcp", "232 MB/s", "2.00 met", "cpu 0.80 quic2p", "0.90", "ingest: goal: 0.45 of a no-op handler"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines[2:6] {
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

func TestParseMachineBusy(t *testing.T) {
	cases := []struct {
		line string
		want time.Duration
		ok   bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 5 50 9000 40 7 9 3 0 0", (100 + 5 + 50 + 3) * 10 * time.Millisecond, true},
		{"cpu 1 2 3 4 5 6 7 8", (1 + 2 + 3 + 8) * 10 * time.Millisecond, true},
		{"cpu0 100 5 50 9000 40 7 9 3 0 0", 0, false}, // one CPU's line, not the sum
		{"cpu 1 2 3", 0, false},
		{"cpu 1 x 3 4 5 6 7 8", 0, false},
		{"cpu 1 -2 3 4 5 6 7 8", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, ok := parseMachineBusy(c.line)
		if got != c.want || ok != c.ok {
			t.Errorf("parseMachineBusy(%q) = %v %v, want %v %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

// TestNeighbourWatch: a busy child process counts as a neighbour unless it
// is among the watched processes, and then its CPU is what drops out.
func TestNeighbourWatch(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("machine CPU is read from /proc")
	}
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := []int{cmd.Process.Pid}
	spun := func() time.Duration { // the child's CPU alone
		both, ok1 := processCPU(pid)
		self, ok2 := processCPU(nil)
		if !ok1 || !ok2 {
			t.Fatal("processCPU failed on Linux")
		}
		return both - self
	}
	all, watched := watchNeighbours(nil), watchNeighbours(pid)
	start, spun0 := time.Now(), spun()
	time.Sleep(1500 * time.Millisecond)
	cAll, ok1 := all.cores()
	cWatched, ok2 := watched.cores()
	el, child := time.Since(start), float64(spun()-spun0)
	if !ok1 || !ok2 {
		t.Fatal("no figure on Linux")
	}
	cores := child / float64(el)
	if cores < 0.05 {
		t.Skipf("the spinning child got %.2f cores: the machine is too busy to tell", cores)
	}
	if cAll < cores-0.15 {
		t.Errorf("a spinning neighbour at %.2f cores came out at %.2f", cores, cAll)
	}
	if d := cAll - cWatched; d < cores-0.15 || d > cores+0.15 {
		t.Errorf("watching the spinner took %.2f cores out, it used %.2f", d, cores)
	}
	res := ScenarioResult{}
	watched.report(&res)
	if _, ok := res.Extra[extraOthersCores]; !ok {
		t.Errorf("report set no %s: %v", extraOthersCores, res.Extra)
	}
}

func TestNeighbourNote(t *testing.T) {
	for _, c := range []struct {
		cores float64
		warn  bool
	}{{0, false}, {0.2, false}, {busyNeighbours - 0.01, false}, {busyNeighbours, true}, {1.35, true}} {
		note := neighbourNote(c.cores)
		if (note != "") != c.warn {
			t.Errorf("neighbourNote(%v) = %q, want a warning: %v", c.cores, note, c.warn)
		}
		if c.warn && !strings.Contains(note, strconv.FormatFloat(c.cores, 'f', 1, 64)+" cores") {
			t.Errorf("neighbourNote(%v) = %q, does not say how busy", c.cores, note)
		}
	}
}
