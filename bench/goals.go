package bench

import (
	"fmt"
	"strconv"
)

// Goal is a figure a scenario should reach on this kind of machine, from
// the project's speed issue (12): a ratio to the scenario's baseline, a
// ratio to the bare QUIC stream measured beside the tunnel, or an absolute
// throughput.
type Goal struct {
	// Figure is "ratio" (to the baseline), "ratio_to_quic" or "throughput".
	Figure string  `json:"figure"`
	Target float64 `json:"target"`
	// Why says what the target stands for.
	Why string `json:"why"`
}

// Goal figures.
const (
	goalRatio       = "ratio"
	goalRatioToQUIC = "ratio_to_quic"
	goalThroughput  = "throughput"
)

// goalFor returns the goal of scenario name run with transport (tunnel
// scenarios) and ordering (e2e), or nil when it has none.
func goalFor(name, transport, ordering string) *Goal {
	switch name {
	case ScenarioIngest:
		return &Goal{goalRatio, 0.45, "0.45 of a no-op handler"}
	case ScenarioE2E:
		if ordering == "ordered" {
			return &Goal{goalThroughput, 3000, "3,000 deliveries/s to one ordered destination"}
		}
		return &Goal{goalRatio, 0.4, "0.4 of a no-op handler"}
	case ScenarioTunnelHTTP:
		return &Goal{goalRatio, 0.5, "0.5 of direct HTTP"}
	case ScenarioTunnelTCP:
		switch transport {
		case "quic":
			return &Goal{goalRatioToQUIC, 0.8, "0.8 of a bare quic-go stream"}
		case "tcp":
			// 1.5x the 155 MB/s a widely used reverse-proxy tool moves over
			// its QUIC transport on this machine.
			return &Goal{goalThroughput, 232, "1.5x another tool's 155 MB/s"}
		}
	}
	return nil
}

// ofGoal is the achieved figure over the goal's target: 1 or more is met.
// ok is false when the run lacks the figure (no baseline, say).
func ofGoal(s ScenarioResult) (float64, bool) {
	g := s.Goal
	if g == nil || g.Target <= 0 {
		return 0, false
	}
	var v float64
	switch g.Figure {
	case goalRatio:
		v = s.Ratio
	case goalRatioToQUIC:
		v = s.Extra[extraRatioToQUIC]
	case goalThroughput:
		v = s.Throughput
	}
	if v <= 0 {
		return 0, false
	}
	return v / g.Target, true
}

// setGoal fills in a result's goal and how far it got.
func setGoal(s *ScenarioResult, transport, ordering string) {
	s.Goal = goalFor(s.Name, transport, ordering)
	if v, ok := ofGoal(*s); ok {
		s.OfGoal = v
		s.GoalMet = v >= 1
	}
}

// goalCols are the table's goal and "of goal" cells.
func goalCols(s ScenarioResult) (string, string) {
	g := s.Goal
	if g == nil {
		return "-", "-"
	}
	var goal string
	switch g.Figure {
	case goalRatio:
		goal = "ratio " + strconv.FormatFloat(g.Target, 'f', 2, 64)
	case goalRatioToQUIC:
		goal = strconv.FormatFloat(g.Target, 'f', 2, 64) + " of quic"
	default:
		goal = strconv.FormatFloat(g.Target, 'f', -1, 64) + " " + s.Unit
	}
	if s.OfGoal <= 0 {
		return goal, "-"
	}
	of := fmt.Sprintf("%.2f", s.OfGoal)
	if s.GoalMet {
		of += " met"
	}
	return goal, of
}
