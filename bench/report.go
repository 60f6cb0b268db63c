package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one Run; its JSON form is what --json writes.
type Report struct {
	Machine   Machine          `json:"machine"`
	Scenarios []ScenarioResult `json:"scenarios"`
}

// Machine describes where the figures were measured.
type Machine struct {
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	Commit     string `json:"commit,omitempty"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUModel   string `json:"cpu_model,omitempty"`
	StartedAt  string `json:"started_at"`
}

// ScenarioResult holds every figure of one scenario.
type ScenarioResult struct {
	Name string `json:"name"`
	// Transport is what the tunnel ran over (tunnel scenarios): quic or tcp.
	Transport string `json:"transport,omitempty"`
	// Mode says how the load was driven: "open 1000/s x64" or "closed x64".
	Mode string `json:"mode"`
	// Measures says what the figure counts where the name alone does not.
	Measures string `json:"measures,omitempty"`
	// Throughput is in Unit (requests/s, deliveries/s, MB/s, MB RSS, ...).
	Throughput float64 `json:"throughput"`
	Unit       string  `json:"unit"`
	// BaselineThroughput is the same load's figure against the machine's
	// limit (zero without --baseline), Ratio = Throughput / BaselineThroughput.
	BaselineThroughput float64 `json:"baseline_throughput"`
	Ratio              float64 `json:"ratio"`
	// Goal is what the figure should reach (nil: no goal); OfGoal is the
	// achieved figure over the goal's target, GoalMet whether it is 1 or more.
	Goal    *Goal   `json:"goal,omitempty"`
	OfGoal  float64 `json:"of_goal,omitempty"`
	GoalMet bool    `json:"goal_met,omitempty"`
	// Latency is measured from the intended send time (open loop).
	Latency         Latency  `json:"latency_ms"`
	BaselineLatency *Latency `json:"baseline_latency_ms,omitempty"`
	// Count is how many requests (events, chunks) succeeded.
	Count int64 `json:"count"`
	// Errors counts failed requests, and for e2e/recovery undelivered events.
	Errors int64 `json:"errors"`
	// FirstError is the first error seen, for diagnosis.
	FirstError string `json:"first_error,omitempty"`
	// DurationSeconds is the length of the measured phase.
	DurationSeconds float64 `json:"duration_s"`
	// Extra holds scenario-specific figures (recovery times, RSS per destination).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Error is set when the scenario could not run (in full).
	Error string `json:"error,omitempty"`
	// NotAvailable is set when the server cannot run the scenario yet (the
	// figures present are the baseline half).
	NotAvailable bool `json:"not_available,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJSONFile writes the report to path.
func (r *Report) WriteJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: write report: %w", err)
	}
	return f.Close()
}

// WriteTable writes the aligned human-readable table: one row per scenario
// (its ratio to the baseline, its goal and how far it got), a "baseline"
// row under it when there is one, then the extra figures.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores, %s, %s/%s, %s", m.Cores, m.GoVersion, m.OS, m.Arch, orDash(m.CPUModel))
	if m.Commit != "" {
		fmt.Fprintf(w, ", commit %.12s", m.Commit)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tmode\tthroughput\tunit\tbaseline\tratio\tgoal\tof goal\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tcount\terrors\t")
	for _, s := range r.Scenarios {
		base, ratio := "-", "-"
		if s.BaselineThroughput > 0 {
			base = num(s.BaselineThroughput)
			ratio = strconv.FormatFloat(s.Ratio, 'f', 3, 64)
		}
		goal, of := goalCols(s)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", s.label(), s.Mode, num(s.Throughput), s.Unit, base, ratio,
			goal, of, latencyCols(s.Latency), s.Count, s.Errors)
		if s.BaselineLatency != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", "  baseline", "", num(s.BaselineThroughput), s.Unit, "", "", "", "",
				latencyCols(*s.BaselineLatency), "", "")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		if len(s.Extra) > 0 {
			parts := make([]string, 0, len(s.Extra))
			for _, k := range slices.Sorted(maps.Keys(s.Extra)) {
				parts = append(parts, k+"="+num(s.Extra[k]))
			}
			fmt.Fprintf(w, "%s: %s\n", s.label(), strings.Join(parts, " "))
		}
		if s.Measures != "" {
			fmt.Fprintf(w, "%s: measures: %s\n", s.label(), s.Measures)
		}
		if s.Goal != nil {
			fmt.Fprintf(w, "%s: goal: %s\n", s.label(), s.Goal.Why)
		}
		if s.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", s.label(), s.FirstError)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", s.label(), s.Error)
		}
	}
	return nil
}

// label names a row: the scenario, and the tunnel's transport if any.
func (s ScenarioResult) label() string {
	if s.Transport != "" {
		return s.Name + "/" + s.Transport
	}
	return s.Name
}

func latencyCols(l Latency) string {
	return strings.Join([]string{ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max)}, "\t")
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// num formats a figure with a precision that suits its size.
func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// machineFacts gathers the Machine block. Missing facts (no git, no
// /proc/cpuinfo) are left empty.
func machineFacts(ctx context.Context) Machine {
	m := Machine{
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		CPUModel:   cpuModel("/proc/cpuinfo"),
		StartedAt:  time.Now().UTC().Format(time.RFC3339),
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	} else if bi, ok := debug.ReadBuildInfo(); ok {
		// Not run inside the repository: the revision the binary was built
		// from, when the build recorded it.
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				m.Commit = s.Value
			}
		}
	}
	return m
}

// cpuModel returns the first "model name" of a cpuinfo file.
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
