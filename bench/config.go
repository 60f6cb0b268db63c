package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// destConfig is one destination of a generated server config.
type destConfig struct {
	slug        string
	url         string
	ordering    string
	maxInFlight int
	timeout     time.Duration
	maxAttempts int
	backoffBase time.Duration
	// paused: events are routed to it and queued as for any destination,
	// and nothing is delivered (the ingest scenario).
	paused bool
}

// serverConfig renders the YAML the server reads: one source (the bench
// source, signed with secret) routed to routeTo, and every destination.
// Strings are written as double-quoted YAML scalars (JSON escaping is valid
// YAML) so no value can break the document.
func serverConfig(source, secret string, routeTo []string, dests []destConfig) string {
	var b strings.Builder
	b.Grow(200 + 220*len(dests))
	fmt.Fprintf(&b, "sources:\n  - slug: %s\n    provider: generic\n    secrets: [%s]\n    routes:\n",
		strconv.Quote(source), strconv.Quote(secret))
	for _, r := range routeTo {
		fmt.Fprintf(&b, "      - destination: %s\n", strconv.Quote(r))
	}
	b.WriteString("destinations:\n")
	for _, d := range dests {
		if d.ordering == "ordered" {
			d.maxInFlight = 1 // the server refuses more for an ordered destination
		}
		fmt.Fprintf(&b, "  - slug: %s\n    url: %s\n    ordering: %s\n    max_in_flight: %d\n    timeout: %s\n    max_attempts: %d\n    backoff_base: %s\n    allow_private_network: true\n",
			strconv.Quote(d.slug), strconv.Quote(d.url), d.ordering, d.maxInFlight,
			d.timeout, d.maxAttempts, d.backoffBase)
		if d.paused {
			b.WriteString("    paused: true\n")
		}
	}
	return b.String()
}
