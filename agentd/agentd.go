package agentd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/webhookops/webhookops/tunnelproto"
)

// Config configures an agent. A zero duration means its default.
type Config struct {
	// Tunnels are the gateway's tunnels: one for a single node, one per
	// member for a cluster. The agent keeps a session to each, every one
	// reconnecting on its own, so whichever member delivers to it has a
	// session of its own. See Endpoints.
	Tunnels []Endpoint
	// Transport is auto (the default: QUIC, falling back to TCP+TLS when
	// QUIC does not come up, as where UDP is blocked), quic or tcp.
	Transport tunnelproto.Transport
	// ID and Secret identify and authenticate the agent.
	ID     string
	Secret string
	// Allow lists the host:port targets this agent will connect to.
	Allow []string
	// Static keeps to Tunnels: the tunnels a cluster's members name
	// (MEMBERS) are not joined. By default the agent follows them.
	Static bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// DialTimeout bounds connecting to a target (10 s).
	DialTimeout time.Duration
	// DrainTimeout bounds how long in-flight streams may run on after
	// shutdown begins (10 s).
	DrainTimeout time.Duration
	// HandshakeTimeout bounds connecting to and authenticating with the
	// gateway (10 s).
	HandshakeTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnects (1 s, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// HealthyAfter: a session that lasted this long resets the backoff (30 s).
	HealthyAfter time.Duration
}

// DefaultConfig returns a config with every default filled in; the caller
// sets Tunnels, ID, Secret and Allow.
func DefaultConfig() Config {
	return Config{
		DialTimeout:      10 * time.Second,
		DrainTimeout:     10 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		MinBackoff:       time.Second,
		MaxBackoff:       30 * time.Second,
		HealthyAfter:     30 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&c.DialTimeout, &d.DialTimeout},
		{&c.DrainTimeout, &d.DrainTimeout},
		{&c.HandshakeTimeout, &d.HandshakeTimeout},
		{&c.MinBackoff, &d.MinBackoff},
		{&c.MaxBackoff, &d.MaxBackoff},
		{&c.HealthyAfter, &d.HealthyAfter},
	} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	return c
}

// ErrInvalidConfig marks a config that failed Validate.
var ErrInvalidConfig = errors.New("agentd: invalid config")

// Validate reports the first problem with the config, naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := validEndpoints(c.Tunnels); err != nil {
		return err
	}
	if c.ID == "" {
		return fmt.Errorf("%w: ID is empty", ErrInvalidConfig)
	}
	if c.Secret == "" {
		return fmt.Errorf("%w: Secret is empty", ErrInvalidConfig)
	}
	for _, a := range c.Allow {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			return fmt.Errorf("%w: Allow entry %q is not host:port", ErrInvalidConfig, a)
		}
	}
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("%w: want 0 < MinBackoff <= MaxBackoff, got %v and %v", ErrInvalidConfig, c.MinBackoff, c.MaxBackoff)
	}
	if c.DialTimeout < 0 || c.DrainTimeout < 0 || c.HandshakeTimeout < 0 || c.HealthyAfter < 0 {
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	for _, ep := range c.Tunnels {
		if err := c.clientConfig(ep).Validate(); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) clientConfig(ep Endpoint) tunnelproto.ClientConfig {
	return tunnelproto.ClientConfig{
		Addr:              ep.Addr,
		Transport:         c.Transport,
		AgentID:           c.ID,
		Secret:            []byte(c.Secret),
		ServerFingerprint: ep.Fingerprint,
		Logger:            c.Logger,
		HandshakeTimeout:  c.HandshakeTimeout,
		DrainTimeout:      c.DrainTimeout,
	}
}

// Agent connects to the gateway and serves its streams.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex      // guards the fields below
	sessions []*session      // Config.Tunnels' in order, then those learned from MEMBERS
	run      context.Context // Run's, once it started: learned sessions run under it
	wg       sync.WaitGroup  // every session's loop
	mismatch bool            // a MEMBERS list did not name every configured tunnel (logged once)
}

// New validates cfg.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agentd.New: %w", err)
	}
	cfg = cfg.withDefaults()
	a := &Agent{cfg: cfg, log: cfg.Logger.With("agent", cfg.ID)}
	for _, ep := range cfg.Tunnels {
		a.sessions = append(a.sessions, a.newSession(ep, false))
	}
	return a, nil
}

// Run keeps a session to every tunnel, each connecting, serving and
// reconnecting on its own, until ctx is done; then every session drains
// its in-flight streams (up to DrainTimeout) and Run returns nil.
func (a *Agent) Run(ctx context.Context) error {
	if len(a.cfg.Allow) == 0 {
		a.log.Warn("the allow list is empty: every request from the gateway will be refused")
	}
	a.mu.Lock()
	a.run = ctx
	for _, s := range a.sessions {
		a.start(s)
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.log.Info("stopped")
	return nil
}

// keep connects to one tunnel, serves it and reconnects with backoff until
// ctx is done.
func (a *Agent) keep(ctx context.Context, s *session) {
	bo := newBackoff(a.cfg.MinBackoff, a.cfg.MaxBackoff)
	var fellBackAt time.Time // when auto last ended up on TCP
	for {
		start := time.Now()
		cc := a.cfg.clientConfig(s.ep)
		cc.Transport = transportFor(a.cfg.Transport, fellBackAt, start)
		cc.OnMembers = a.learn
		client, err := tunnelproto.Dial(ctx, cc)
		if ctx.Err() != nil {
			if client != nil {
				client.Close()
			}
			return
		}
		var why string
		if err != nil {
			why = "connect failed"
		} else {
			if cc.Transport == tunnelproto.TransportAuto && client.Transport() == tunnelproto.TransportTCP {
				fellBackAt = time.Now()
			}
			up := a.connected(s, client)
			s.log.Info("connected", "server", client.RemoteAddr().String(), "transport", client.Transport().String(), "dialed", cc.Transport.String(), "sessions_up", up)
			err = client.Serve(ctx, func(ctx context.Context, r *tunnelproto.Request) { a.serve(ctx, s.log, r) })
			if ctx.Err() != nil {
				a.ended(s, nil)
				return
			}
			why = "session ended"
			if time.Since(start) >= a.cfg.HealthyAfter {
				bo.reset()
			}
		}
		up := a.ended(s, err)
		wait := bo.next()
		s.log.Log(ctx, level(err), why+"; reconnecting", "err", err, "hint", hint(err), "retry_in", wait.Round(time.Millisecond), "sessions_up", up)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// quicRetryAfter is how long after auto fell back to TCP reconnects go
// straight to TCP, before QUIC is tried again.
const quicRetryAfter = 10 * time.Minute

// transportFor is what to dial: the configured transport, except that
// after auto fell back to TCP (UDP blocked, most likely), reconnects within
// quicRetryAfter go straight to TCP instead of waiting out the QUIC attempt
// (FallbackDelay) every time.
func transportFor(configured tunnelproto.Transport, fellBackAt, now time.Time) tunnelproto.Transport {
	if configured == tunnelproto.TransportAuto && !fellBackAt.IsZero() && now.Sub(fellBackAt) < quicRetryAfter {
		return tunnelproto.TransportTCP
	}
	return configured
}

// level: errors that need an operator are logged as errors, the rest
// (restarts, network blips) as warnings.
func level(err error) slog.Level {
	var re *tunnelproto.RefusedError
	if errors.Is(err, tunnelproto.ErrPinMismatch) || (errors.As(err, &re) && re.Code == tunnelproto.CodeAuthFailed) {
		return slog.LevelError
	}
	return slog.LevelWarn
}

func hint(err error) string {
	var re *tunnelproto.RefusedError
	var ge *tunnelproto.GoAwayError
	switch {
	case errors.Is(err, tunnelproto.ErrPinMismatch):
		return "the server's certificate is not the one --server-fingerprint pins; re-enroll if the server's identity really changed"
	case errors.As(err, &re) && re.Code == tunnelproto.CodeAuthFailed:
		return "check --id and --secret; the secret may have been rotated or revoked"
	case errors.As(err, &re) && re.Code == tunnelproto.CodeRateLimited:
		return "too many failed attempts; the server refuses for a while"
	case errors.As(err, &ge) && ge.Code == tunnelproto.CodeReplaced:
		return "another agent with the same id connected; is this agent running twice, or do two of its --tunnel addresses reach the same server?"
	case errors.As(err, &ge) && ge.Code == tunnelproto.CodeRevoked:
		return "the server cut this session (secret revoked or rotated?)"
	case errors.As(err, &ge) && ge.Code == tunnelproto.CodeShutdown:
		return "the server is restarting"
	}
	return ""
}

// serve answers one stream: allow list, dial, join.
func (a *Agent) serve(ctx context.Context, log *slog.Logger, r *tunnelproto.Request) {
	log = log.With("request", r.ID, "kind", r.Kind.String(), "target", r.Target)
	if !tunnelproto.TargetAllowed(a.cfg.Allow, r.Target) {
		log.Warn("refused: target not in the allow list")
		r.Reject(tunnelproto.CodeNotAllowed, r.Target+" is not in this agent's allow list")
		return
	}
	d := net.Dialer{Timeout: a.cfg.DialTimeout}
	tc, err := d.DialContext(ctx, "tcp", r.Target)
	if err != nil {
		log.Warn("dial failed", "err", err)
		r.Reject(tunnelproto.CodeDialFailed, err.Error())
		return
	}
	sc, err := r.Accept()
	if err != nil {
		tc.Close()
		log.Warn("answering OPEN failed", "err", err)
		return
	}
	start := time.Now()
	err = tunnelproto.Join(sc, tc)
	log.Debug("stream done", "duration", time.Since(start).Round(time.Microsecond), "err", err)
}

// backoff is capped exponential backoff with jitter: the n-th wait is drawn
// uniformly from [d/2, d] where d = min(max, 2·min·2^n), so waits run from
// min to max and agents that lost the same server spread out.
type backoff struct {
	min, max time.Duration
	n        int
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) reset() { b.n = 0 }

func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 30 {
		d = min(b.max, 2*b.min<<b.n)
	}
	if d < 2*b.min { // max close to min
		d = 2 * b.min
	}
	b.n++
	half := d / 2
	w := half + rand.N(half+1)
	return min(max(w, b.min), b.max)
}
