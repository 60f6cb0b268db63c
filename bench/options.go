package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Scenario names, as used on the command line and in the report.
const (
	ScenarioIngest       = "ingest"
	ScenarioE2E          = "e2e"
	ScenarioTunnelHTTP   = "tunnel-http"
	ScenarioTunnelTCP    = "tunnel-tcp"
	ScenarioRecovery     = "recovery"
	ScenarioDestinations = "destinations"
)

// Scenarios lists every scenario in the order `bench all` runs them.
var Scenarios = []string{
	ScenarioIngest, ScenarioE2E, ScenarioRecovery, ScenarioDestinations,
	ScenarioTunnelHTTP, ScenarioTunnelTCP,
}

var (
	// ErrNotLoopback is returned for a target or sink address that is not on
	// loopback; the harness never sends anywhere else.
	ErrNotLoopback = errors.New("bench: address is not loopback (127.0.0.0/8, ::1, localhost)")
	// ErrNotAvailable marks a scenario the server cannot run yet.
	ErrNotAvailable = errors.New("not available")
	// ErrServerUnavailable is returned when the server binary cannot `serve`.
	ErrServerUnavailable = errors.New("bench: server binary cannot serve")
)

// Options configures one run. A zero field means the default from
// DefaultOptions.
type Options struct {
	// Scenarios to run, in order; see the Scenario* constants.
	Scenarios []string

	// Target is the ingest base URL of a running server (http://127.0.0.1:8080).
	// Empty means start a child `serve` on a temporary data dir.
	Target string
	// SinkAddr is where the in-process sink listens (host:port on loopback).
	// With Target set, the running server's destination must point at
	// http://SinkAddr/hook for e2e. Empty means a free port.
	SinkAddr string
	// ForwardAddr is a tunnel forward set up by hand (a server forward listen
	// address whose agent reaches AppAddr) for tunnel-http and tunnel-tcp.
	ForwardAddr string
	// AppAddr is where the loopback app of the tunnel scenarios listens;
	// empty means a free port.
	AppAddr string
	// AgentBin is the agentd binary for the tunnel scenarios; empty means
	// "agentd" beside ServerBin, then on PATH.
	AgentBin string
	// ServerBin is the webhookops binary to start; empty means os.Executable().
	ServerBin string
	// Source and Secret identify the source the load is signed for.
	Source string
	Secret string

	// Rate is the open-loop request rate per second.
	Rate float64
	// Max selects closed-loop peak-throughput mode: Concurrency workers each
	// send the next request as soon as the previous one is answered.
	Max bool
	// Concurrency is the worker (and connection) count.
	Concurrency int
	// Duration bounds each measured phase.
	Duration time.Duration
	// Warmup runs the same load, unrecorded, before each measured phase.
	// Negative means none.
	Warmup time.Duration
	// Requests caps the requests of each measured phase.
	Requests int64
	// Baseline also runs the same load against the machine's limit.
	Baseline bool
	// Rounds, with Baseline, splits Duration into this many alternating
	// slices of our load and the baseline's (ingest, tunnel-http), so a noisy
	// neighbour hits both alike. 1 runs ours, then the baseline.
	Rounds int
	// BodySize is the size of each webhook body in bytes.
	BodySize int
	// RequestTimeout bounds a single request.
	RequestTimeout time.Duration
	// DrainTimeout bounds waiting for deliveries after the load stops
	// (e2e) and for the backlog to drain (recovery).
	DrainTimeout time.Duration

	// Ordering is the destination ordering mode for e2e/recovery: parallel or ordered.
	Ordering string
	// MaxInFlight is the destination's max_in_flight.
	MaxInFlight int
	// Events is the recovery backlog size.
	Events int64
	// Destinations is the destination count for the destinations scenario.
	Destinations int
	// Streams is the number of parallel TCP streams for tunnel-tcp.
	Streams int
	// Transports lists what the agent dials over in the tunnel scenarios,
	// one run (one row) each: "quic", "tcp".
	Transports []string

	// Progress receives a progress bar; nil means none.
	Progress io.Writer
	// ServerLog receives the child server's output; nil means a file in the
	// run's temporary directory (shown when the server fails).
	ServerLog io.Writer
	// KeepData keeps the temporary data dirs.
	KeepData bool
}

// DefaultOptions returns the defaults the command line starts from.
func DefaultOptions() Options {
	return Options{
		Scenarios:      []string{ScenarioIngest},
		Source:         "bench",
		Secret:         "benchsecret",
		Rate:           1000,
		Concurrency:    64,
		Duration:       10 * time.Second,
		Warmup:         time.Second,
		Requests:       1_000_000,
		BodySize:       512,
		RequestTimeout: 10 * time.Second,
		DrainTimeout:   2 * time.Minute,
		Ordering:       "parallel",
		MaxInFlight:    64,
		Events:         10_000,
		Destinations:   10_000,
		Streams:        1,
		Transports:     []string{"quic", "tcp"},
	}
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if len(o.Scenarios) == 0 {
		o.Scenarios = d.Scenarios
	}
	if o.Source == "" {
		o.Source = d.Source
	}
	if o.Secret == "" {
		o.Secret = d.Secret
	}
	if o.Rate == 0 {
		o.Rate = d.Rate
	}
	if o.Concurrency == 0 {
		o.Concurrency = d.Concurrency
	}
	if o.Duration == 0 {
		o.Duration = d.Duration
	}
	if o.Warmup == 0 {
		o.Warmup = d.Warmup
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Requests == 0 {
		o.Requests = d.Requests
	}
	if o.BodySize == 0 {
		o.BodySize = d.BodySize
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = d.RequestTimeout
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = d.DrainTimeout
	}
	if o.Ordering == "" {
		o.Ordering = d.Ordering
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = d.MaxInFlight
	}
	if o.Events == 0 {
		o.Events = d.Events
	}
	if o.Destinations == 0 {
		o.Destinations = d.Destinations
	}
	if o.Streams == 0 {
		o.Streams = d.Streams
	}
	if len(o.Transports) == 0 {
		o.Transports = d.Transports
	}
	return o
}

// Validate reports the first invalid field, after defaults are applied.
func (o Options) Validate() error {
	o = o.withDefaults()
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) && s != ScenarioCluster {
			return fmt.Errorf("bench: unknown scenario %q (want one of %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	switch {
	case o.Rate < 0:
		return fmt.Errorf("bench: rate %v must be positive", o.Rate)
	case o.Concurrency < 0:
		return fmt.Errorf("bench: concurrency %d must be positive", o.Concurrency)
	case o.Duration < 0:
		return fmt.Errorf("bench: duration %v must be positive", o.Duration)
	case o.Requests < 0:
		return fmt.Errorf("bench: requests %d must be positive", o.Requests)
	case o.BodySize < 0:
		return fmt.Errorf("bench: body size %d must be positive", o.BodySize)
	case o.Events < 0:
		return fmt.Errorf("bench: events %d must be positive", o.Events)
	case o.Destinations < 0:
		return fmt.Errorf("bench: destinations %d must be positive", o.Destinations)
	case o.Rounds < 0:
		return fmt.Errorf("bench: rounds %d must be positive", o.Rounds)
	case o.Streams < 0:
		return fmt.Errorf("bench: streams %d must be positive", o.Streams)
	case o.MaxInFlight < 0:
		return fmt.Errorf("bench: max in flight %d must be positive", o.MaxInFlight)
	case o.Ordering != "parallel" && o.Ordering != "ordered":
		return fmt.Errorf("bench: ordering %q must be parallel or ordered", o.Ordering)
	}
	for _, t := range o.Transports {
		if t != "quic" && t != "tcp" {
			return fmt.Errorf("bench: transport %q must be quic or tcp", t)
		}
	}
	if o.Target != "" {
		if _, err := CheckLoopbackURL(o.Target); err != nil {
			return err
		}
	}
	for _, a := range []string{o.SinkAddr, o.ForwardAddr, o.AppAddr} {
		if a != "" {
			if err := CheckLoopbackHostPort(a); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckLoopbackURL parses an http(s) URL and returns it if its host is
// loopback (127.0.0.0/8, ::1 or localhost).
func CheckLoopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bench: target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("bench: target %q: scheme must be http or https", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("bench: target %q: %w", raw, ErrNotLoopback)
	}
	return u, nil
}

// CheckLoopbackHostPort checks a host:port address is on loopback.
func CheckLoopbackHostPort(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bench: address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("bench: address %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
