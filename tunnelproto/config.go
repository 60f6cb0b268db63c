package tunnelproto

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"
)

// Authenticator tells the server who may connect. Lookup is called for every
// handshake and every Dial, so a rotated secret or a changed target list takes
// effect without a restart. It must be safe for concurrent use, cheap, and
// must not block on I/O for long (it runs on the handshake path).
type Authenticator interface {
	// Lookup returns the agent's current secret and the host:port targets
	// the server may ask it to reach; ok is false for an unknown or revoked
	// agent.
	Lookup(agentID string) (secret []byte, allowedTargets []string, ok bool)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(agentID string) ([]byte, []string, bool)

// Lookup calls f.
func (f AuthenticatorFunc) Lookup(agentID string) ([]byte, []string, bool) { return f(agentID) }

// ServerConfig configures a tunnel server. A zero field means its default.
type ServerConfig struct {
	// Addr is the address to listen on, e.g. ":7443" or "127.0.0.1:0":
	// UDP for QUIC, and TCP with the same port number for agents whose
	// network drops UDP (TCP+TLS 1.3, streams multiplexed by yamux).
	Addr string
	// DisableQUIC and DisableTCP turn one transport off (not both).
	DisableQUIC bool
	DisableTCP  bool
	// TLSCert is the server's certificate; agents pin its Fingerprint.
	TLSCert tls.Certificate
	// Auth looks up agents' secrets and allowed targets. Required.
	Auth Authenticator
	// OnEvent receives authenticated, rejected, online and offline events
	// for the audit trail. It is called synchronously from connection
	// goroutines and must not block. Rejected events are logged at debug
	// level only (anyone can cause them): count or tally them here.
	OnEvent func(Event)
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// HeartbeatInterval is how often agents are told to send PING (10 s).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout drops a session that sent nothing for this long (30 s).
	HeartbeatTimeout time.Duration
	// HandshakeTimeout bounds the QUIC and the HELLO…OK handshakes (10 s).
	HandshakeTimeout time.Duration
	// OpenTimeout bounds the wait for OPEN_OK when Dial's context has no
	// deadline (15 s).
	OpenTimeout time.Duration

	// AuthFailureBurst failures per source address are
	// allowed before refusing with CodeRateLimited (5); one more comes back
	// every AuthFailureRefill (12 s).
	AuthFailureBurst  int
	AuthFailureRefill time.Duration

	// MaxPendingPerAddr and MaxPending cap connections not yet
	// authenticated (in TLS or HELLO…OK, each bounded by HandshakeTimeout)
	// per source address (8) and in total (256); past them a new
	// connection is closed at once.
	MaxPendingPerAddr int
	MaxPending        int

	// Flow-control windows (16 MiB per stream, 32 MiB per connection).
	MaxStreamReceiveWindow     uint64
	MaxConnectionReceiveWindow uint64
}

// DefaultServerConfig returns a config with every default filled in; the
// caller sets Addr, TLSCert and Auth.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		HeartbeatInterval:          10 * time.Second,
		HeartbeatTimeout:           30 * time.Second,
		HandshakeTimeout:           10 * time.Second,
		OpenTimeout:                15 * time.Second,
		AuthFailureBurst:           5,
		AuthFailureRefill:          12 * time.Second,
		MaxPendingPerAddr:          8,
		MaxPending:                 256,
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 32 << 20,
	}
}

// withDefaults fills zero fields from DefaultServerConfig.
func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDefault(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDefault(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&c.OpenTimeout, d.OpenTimeout)
	setDefault(&c.AuthFailureBurst, d.AuthFailureBurst)
	setDefault(&c.AuthFailureRefill, d.AuthFailureRefill)
	setDefault(&c.MaxPendingPerAddr, d.MaxPendingPerAddr)
	setDefault(&c.MaxPending, d.MaxPending)
	setDefault(&c.MaxStreamReceiveWindow, d.MaxStreamReceiveWindow)
	setDefault(&c.MaxConnectionReceiveWindow, d.MaxConnectionReceiveWindow)
	return c
}

func setDefault[T comparable](p *T, d T) {
	var zero T
	if *p == zero {
		*p = d
	}
}

// Validate reports the first problem with the config (after defaults).
func (c ServerConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Addr == "":
		return fmt.Errorf("%w: Addr is empty", ErrInvalidConfig)
	case len(c.TLSCert.Certificate) == 0 || c.TLSCert.PrivateKey == nil:
		return fmt.Errorf("%w: TLSCert has no certificate or key", ErrInvalidConfig)
	case c.Auth == nil:
		return fmt.Errorf("%w: Auth is nil", ErrInvalidConfig)
	case c.DisableQUIC && c.DisableTCP:
		return fmt.Errorf("%w: both transports are disabled", ErrInvalidConfig)
	case c.MaxStreamReceiveWindow > 1<<31:
		return fmt.Errorf("%w: MaxStreamReceiveWindow above 2 GiB", ErrInvalidConfig)
	case c.HeartbeatInterval < 0 || c.HeartbeatTimeout < 0 || c.HandshakeTimeout < 0 || c.OpenTimeout < 0 || c.AuthFailureRefill < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case c.HeartbeatTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("%w: HeartbeatTimeout %v must exceed HeartbeatInterval %v", ErrInvalidConfig, c.HeartbeatTimeout, c.HeartbeatInterval)
	case c.HeartbeatInterval > time.Duration(1<<32-1)*time.Millisecond:
		return fmt.Errorf("%w: HeartbeatInterval %v too large", ErrInvalidConfig, c.HeartbeatInterval)
	case c.AuthFailureBurst < 0:
		return fmt.Errorf("%w: AuthFailureBurst is negative", ErrInvalidConfig)
	case c.MaxPending < 0 || c.MaxPendingPerAddr < 0:
		return fmt.Errorf("%w: MaxPending %d or MaxPendingPerAddr %d is negative", ErrInvalidConfig, c.MaxPending, c.MaxPendingPerAddr)
	}
	return nil
}

func (c ServerConfig) tlsConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.TLSCert},
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}
}

func (c ServerConfig) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:       c.HandshakeTimeout,
		MaxIdleTimeout:             c.HeartbeatTimeout,
		InitialStreamReceiveWindow: 1 << 20,
		MaxStreamReceiveWindow:     c.MaxStreamReceiveWindow,
		// Auto-tuning starts from here; a small start costs throughput on
		// the first megabytes of every connection.
		InitialConnectionReceiveWindow: 2 << 20,
		MaxConnectionReceiveWindow:     c.MaxConnectionReceiveWindow,
		// The agent opens exactly one stream, the control stream.
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
	}
}

// EventKind names an audited session event.
type EventKind string

// Event kinds.
const (
	EventAuthenticated EventKind = "authenticated" // proof verified
	EventRejected      EventKind = "rejected"      // handshake refused; Code and Reason say why
	EventOnline        EventKind = "online"        // session registered (after EventAuthenticated)
	EventOffline       EventKind = "offline"       // session ended; Code and Reason say why
)

// Event is one audited change of an agent's session.
type Event struct {
	Kind       EventKind
	AgentID    string // empty if the handshake ended before HELLO
	RemoteAddr string
	Code       Code   // for rejected and offline
	Reason     string // human readable detail for the audit trail (never a secret)
	Time       time.Time
}
