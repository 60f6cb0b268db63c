package agentd

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
		if h, p, err := net.SplitHostPort(ep.Addr); err != nil || h == "" || !validPort(p) || strings.IndexFunc(h, badHostRune) >= 0 {
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

// validPort reports whether p is a port a dial can use: a number from 1 to
// 65535, or a service name ("https").
func validPort(p string) bool {
	if p == "" {
		return false
	}
	if strings.Trim(p, "0123456789") == "" {
		n, err := strconv.ParseUint(p, 10, 16)
		return err == nil && n > 0
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// badHostRune: no host name or address holds a control character or a
// space (a MEMBERS entry with one would be a session dialling nothing, for
// ever).
func badHostRune(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }

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
	Learned   bool      // the cluster named this tunnel (MEMBERS); not given in Config
}

// session is one tunnel's reconnect loop's state.
type session struct {
	ep      Endpoint
	learned bool // from MEMBERS, not Config.Tunnels
	log     *slog.Logger
	stop    context.CancelFunc // ends this session's loop alone; set by start

	mu sync.Mutex // guards st
	st SessionState
}

func (a *Agent) newSession(ep Endpoint, learned bool) *session {
	return &session{ep: ep, learned: learned, log: a.log.With("tunnel", ep.Addr), st: SessionState{Tunnel: ep.Addr, Learned: learned}}
}

// start runs s's loop under Run's context. The caller holds a.mu, and Run
// has started.
func (a *Agent) start(s *session) {
	ctx, cancel := context.WithCancel(a.run)
	s.stop = cancel
	a.wg.Go(func() {
		defer cancel()
		a.keep(ctx, s)
	})
}

// Sessions reports every tunnel's session: Config.Tunnels' in order, then
// those learned from the cluster.
func (a *Agent) Sessions() []SessionState {
	a.mu.Lock()
	ss := slices.Clone(a.sessions)
	a.mu.Unlock()
	out := make([]SessionState, len(ss))
	for i, s := range ss {
		s.mu.Lock()
		out[i] = s.st
		s.mu.Unlock()
	}
	return out
}

// learn follows the cluster's members as a session's server told them
// (MEMBERS): a session to each member not yet joined, pinned with the pin
// the list gives; a learned session to a member no longer listed stops,
// and one whose pin changed starts again with the new pin. The tunnels
// given in Config are kept whatever the list says, with their own pins.
// It follows only a list that names every configured tunnel by the same
// address: a cluster that names its tunnels otherwise (a DNS alias given
// to --tunnel, say) would have the agent keep two sessions to one
// server, which replace each other forever.
func (a *Agent) learn(ms []tunnelproto.Member) {
	if a.cfg.Static {
		return
	}
	listed := make(map[string]Endpoint, len(ms))
	for _, m := range ms {
		ep := Endpoint{Addr: m.Addr, Fingerprint: m.Fingerprint}
		if validEndpoints([]Endpoint{ep}) == nil {
			listed[m.Addr] = ep
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == nil || a.run.Err() != nil {
		return
	}
	for _, ep := range a.cfg.Tunnels {
		if _, ok := listed[ep.Addr]; !ok {
			if !a.mismatch {
				a.mismatch = true
				a.log.Warn("the cluster's list of tunnels does not name this one as --tunnel does: not following the cluster's members; enroll again to get every member's address",
					"tunnel", ep.Addr, "listed", slices.Sorted(maps.Keys(listed)))
			}
			return
		}
	}
	running := make(map[string]*session, len(a.sessions))
	kept := a.sessions[:0:0]
	for _, s := range a.sessions {
		ep, ok := listed[s.ep.Addr]
		if s.learned && (!ok || ep.Fingerprint != s.ep.Fingerprint) {
			s.stop()
			s.log.Info("left the cluster's tunnels (or its pin changed); session stopped")
			continue
		}
		running[s.ep.Addr] = s
		kept = append(kept, s)
	}
	a.sessions = kept
	for _, addr := range slices.Sorted(maps.Keys(listed)) {
		if _, ok := running[addr]; ok {
			continue
		}
		s := a.newSession(listed[addr], true)
		a.sessions = append(a.sessions, s)
		a.start(s)
		s.log.Info("joining a tunnel the cluster named", "fingerprint", s.ep.Fingerprint)
	}
}

// up counts the sessions up, as "n/total" for the log.
func (a *Agent) up() string {
	st := a.Sessions()
	n := 0
	for _, s := range st {
		if s.Connected {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(st))
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
