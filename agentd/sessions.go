package agentd

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/webhookops/webhookops/tunnelproto"
)

// Endpoint is one gateway tunnel: a single node's, or one cluster
// member's.
type Endpoint struct {
	// Addr is host:port (UDP for QUIC, TCP for the fallback; the gateway
	// listens on both with one port number).
	Addr string
	// Fingerprint pins that tunnel's certificate, "sha256:<hex>".
	Fingerprint string
}

// Endpoints pairs tunnel addresses with pins as `agentd join` takes them:
// one pin for every address (members sharing one tunnel certificate), or
// one pin per address in the same order (each member's own certificate).
func Endpoints(addrs, pins []string) ([]Endpoint, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: no tunnel address", ErrInvalidConfig)
	}
	if len(pins) != 1 && len(pins) != len(addrs) {
		return nil, fmt.Errorf("%w: %d tunnel addresses and %d server fingerprints: give one fingerprint for all, or one per address in the same order", ErrInvalidConfig, len(addrs), len(pins))
	}
	eps := make([]Endpoint, len(addrs))
	for i, addr := range addrs {
		pin := pins[0]
		if len(pins) > 1 {
			pin = pins[i]
		}
		eps[i] = Endpoint{Addr: addr, Fingerprint: pin}
	}
	return eps, validEndpoints(eps)
}

// validEndpoints checks every address and pin, and that no address comes
// twice (two sessions of one agent to one server replace each other
// forever).
func validEndpoints(eps []Endpoint) error {
	if len(eps) == 0 {
		return fmt.Errorf("%w: Tunnels is empty", ErrInvalidConfig)
	}
	seen := make(map[string]bool, len(eps))
	for _, ep := range eps {
		if h, p, err := net.SplitHostPort(ep.Addr); err != nil || h == "" || p == "" {
			return fmt.Errorf("%w: Tunnels: %q is not host:port", ErrInvalidConfig, ep.Addr)
		}
		if seen[ep.Addr] {
			return fmt.Errorf("%w: Tunnels: %s is listed twice", ErrInvalidConfig, ep.Addr)
		}
		seen[ep.Addr] = true
		if _, err := tunnelproto.ParseFingerprint(ep.Fingerprint); err != nil {
			return fmt.Errorf("%w: Tunnels: fingerprint of %s: %v", ErrInvalidConfig, ep.Addr, err)
		}
	}
	return nil
}

// SessionState is one tunnel's session as the agent sees it.
type SessionState struct {
	Tunnel    string    // the address dialled
	Connected bool      // a session is up
	Server    string    // the server's address of the session up, or of the last one
	Transport string    // quic or tcp, of the session up or the last one
	Since     time.Time // when the session came up or went down; zero before the first attempt ended
	Sessions  int       // sessions that came up so far
	Failures  int       // attempts or sessions that ended in an error so far
	LastError string    // why the last attempt or session ended, if it failed
}

// session is one tunnel's reconnect loop's state.
type session struct {
	ep  Endpoint
	log *slog.Logger
	mu  sync.Mutex // guards st
	st  SessionState
}

// Sessions reports every tunnel's session, in Config.Tunnels' order.
func (a *Agent) Sessions() []SessionState {
	out := make([]SessionState, len(a.sessions))
	for i, s := range a.sessions {
		s.mu.Lock()
		out[i] = s.st
		s.mu.Unlock()
	}
	return out
}

// up counts the sessions up, as "n/total" for the log.
func (a *Agent) up() string {
	n := 0
	for _, st := range a.Sessions() {
		if st.Connected {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(a.sessions))
}

// connected records that s's session came up; it returns the sessions up.
func (a *Agent) connected(s *session, c *tunnelproto.Client) string {
	s.mu.Lock()
	s.st.Connected, s.st.Since = true, time.Now()
	s.st.Server, s.st.Transport = c.RemoteAddr().String(), c.Transport().String()
	s.st.Sessions++
	s.mu.Unlock()
	return a.up()
}

// ended records that s's attempt or session ended with err (nil: stopped);
// it returns the sessions up.
func (a *Agent) ended(s *session, err error) string {
	s.mu.Lock()
	s.st.Connected, s.st.Since = false, time.Now()
	if err != nil {
		s.st.Failures++
		s.st.LastError = err.Error()
	}
	s.mu.Unlock()
	return a.up()
}
