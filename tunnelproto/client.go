package tunnelproto

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ClientConfig configures the agent end of a tunnel. A zero field means its
// default.
type ClientConfig struct {
	// localAddr, when set, is the source address of a TCP dial (tests
	// rotate 127.0.0.x with it).
	localAddr net.Addr

	// Addr is the server's host:port: UDP for QUIC, TCP for TCP+TLS (the
	// server listens on both with the same port number).
	Addr string
	// Transport is TransportAuto (the default: QUIC, falling back to TCP),
	// TransportQUIC or TransportTCP.
	Transport Transport
	// AgentID and Secret authenticate the agent.
	AgentID string
	Secret  []byte
	// ServerFingerprint pins the server's certificate: "sha256:<hex>".
	ServerFingerprint string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnMembers, when set, hears the gateway cluster's tunnels whenever the
	// server sends them (after OK, and on every change), on the session's
	// control goroutine: it must not block.
	OnMembers func([]Member)

	// HandshakeTimeout bounds dialling and authenticating (10 s).
	HandshakeTimeout time.Duration
	// FallbackDelay is how long TransportAuto waits for QUIC before it also
	// tries TCP (2 s); a QUIC failure starts TCP at once.
	FallbackDelay time.Duration
	// HeartbeatTimeout ends the session when the server answers no PING for
	// this long (three of the server's heartbeat intervals).
	HeartbeatTimeout time.Duration
	// DrainTimeout bounds how long Serve waits for in-flight streams after
	// its context ends (10 s).
	DrainTimeout time.Duration
	// MaxStreams is how many concurrent streams the server may open (1024).
	MaxStreams int64
	// Flow-control windows (16 MiB per stream, 32 MiB per connection).
	MaxStreamReceiveWindow     uint64
	MaxConnectionReceiveWindow uint64
}

// DefaultClientConfig returns a config with every default filled in.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		HandshakeTimeout:           10 * time.Second,
		FallbackDelay:              2 * time.Second,
		DrainTimeout:               10 * time.Second,
		MaxStreams:                 1024,
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 32 << 20,
	}
}

func (c ClientConfig) withDefaults() ClientConfig {
	d := DefaultClientConfig()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&c.FallbackDelay, d.FallbackDelay)
	setDefault(&c.DrainTimeout, d.DrainTimeout)
	setDefault(&c.MaxStreams, d.MaxStreams)
	setDefault(&c.MaxStreamReceiveWindow, d.MaxStreamReceiveWindow)
	setDefault(&c.MaxConnectionReceiveWindow, d.MaxConnectionReceiveWindow)
	return c
}

// Validate reports the first problem with the config.
func (c ClientConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: Addr %q is not host:port", ErrInvalidConfig, c.Addr)
	}
	if !validAgentID(c.AgentID) {
		return fmt.Errorf("%w: AgentID must be 1 to %d printable ASCII bytes without spaces", ErrInvalidConfig, MaxAgentIDLen)
	}
	if len(c.Secret) == 0 {
		return fmt.Errorf("%w: Secret is empty", ErrInvalidConfig)
	}
	if _, err := ParseFingerprint(c.ServerFingerprint); err != nil {
		return err
	}
	if c.HandshakeTimeout < 0 || c.HeartbeatTimeout < 0 || c.DrainTimeout < 0 || c.FallbackDelay < 0 || c.MaxStreams < 0 {
		return fmt.Errorf("%w: negative value", ErrInvalidConfig)
	}
	if c.Transport > TransportTCP {
		return fmt.Errorf("%w: unknown transport %d", ErrInvalidConfig, c.Transport)
	}
	if c.MaxStreamReceiveWindow > 1<<31 {
		return fmt.Errorf("%w: MaxStreamReceiveWindow above 2 GiB", ErrInvalidConfig)
	}
	return nil
}

// Client is one authenticated agent session. Dial makes it; Serve hands the
// server's streams to a Handler until the session ends.
type Client struct {
	cfg       ClientConfig
	log       *slog.Logger
	conn      conn
	ctrl      stream
	heartbeat time.Duration

	wmu  sync.Mutex // guards writes on ctrl and wbuf
	wbuf [64]byte
}

// Dial connects to the server, checks its certificate against the pin and
// authenticates. A refusal returns an error matching ErrRefused whose
// *RefusedError carries the server's reason code; a certificate that does
// not match the pin returns ErrPinMismatch.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tunnelproto.Dial: %w", err)
	}
	cfg = cfg.withDefaults()
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tunnelproto.Dial %s: %w", cfg.Addr, err)
	}
	return c, nil
}

func dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	conn, err := dialTransport(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("component", "tunnel"), conn: conn}
	if err := c.handshake(ctx); err != nil {
		conn.closeWithError(CodeNone, "")
		return nil, err
	}
	return c, nil
}

// clientTLSConfig pins the server certificate; the returned function
// reports the pin mismatch the handshake failed with, if it did.
func clientTLSConfig(cfg ClientConfig) (*tls.Config, func() error) {
	pin, _ := ParseFingerprint(cfg.ServerFingerprint)
	verify := pinVerifier(pin)
	var mu sync.Mutex
	var pinErr error
	return &tls.Config{
			// The pin replaces chain and name verification.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
				err := verify(raw, chains)
				mu.Lock()
				pinErr = err
				mu.Unlock()
				return err
			},
			NextProtos: []string{ALPN},
			MinVersion: tls.VersionTLS13,
		}, func() error {
			mu.Lock()
			defer mu.Unlock()
			return pinErr
		}
}

func dialQUIC(ctx context.Context, cfg ClientConfig) (conn, error) {
	tlsConf, pinErr := clientTLSConfig(cfg)
	quicConf := &quic.Config{
		HandshakeIdleTimeout:           cfg.HandshakeTimeout,
		MaxIdleTimeout:                 time.Minute, // the server's shorter timeout wins
		InitialStreamReceiveWindow:     1 << 20,
		MaxStreamReceiveWindow:         cfg.MaxStreamReceiveWindow,
		InitialConnectionReceiveWindow: 2 << 20,
		MaxConnectionReceiveWindow:     cfg.MaxConnectionReceiveWindow,
		MaxIncomingStreams:             cfg.MaxStreams,
		MaxIncomingUniStreams:          -1,
	}
	qc, err := quic.DialAddr(ctx, cfg.Addr, tlsConf, quicConf)
	if err != nil {
		if perr := pinErr(); perr != nil {
			return nil, perr
		}
		return nil, err
	}
	return quicConn{qc}, nil
}

// dialTransport connects on the configured transport. With TransportAuto
// it starts QUIC, and TCP as well once QUIC has failed or FallbackDelay has
// passed without it; the first connection up is kept and the other closed.
// A pin mismatch on either ends the attempt: the other would meet the same
// certificate.
func dialTransport(ctx context.Context, cfg ClientConfig) (conn, error) {
	switch cfg.Transport {
	case TransportQUIC:
		return dialQUIC(ctx, cfg)
	case TransportTCP:
		return dialTCP(ctx, cfg)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		c   conn
		err error
		t   Transport
	}
	results := make(chan result, 2)
	start := func(t Transport, d func(context.Context, ClientConfig) (conn, error)) {
		go func() {
			c, err := d(ctx, cfg)
			results <- result{c, err, t}
		}()
	}
	start(TransportQUIC, dialQUIC)
	running, tcpStarted := 1, false
	fallback := time.NewTimer(cfg.FallbackDelay)
	defer fallback.Stop()
	var won conn
	var quicErr, tcpErr error
	for running > 0 {
		select {
		case <-fallback.C:
			if !tcpStarted && won == nil {
				tcpStarted = true
				running++
				start(TransportTCP, dialTCP)
			}
		case r := <-results:
			running--
			switch {
			case r.err == nil && won == nil:
				won = r.c
				cancel() // the other attempt gives up
			case r.err == nil:
				r.c.closeWithError(CodeNone, "")
			case errors.Is(r.err, ErrPinMismatch):
				// Decisive: the other transport meets the same certificate.
				if r.t == TransportQUIC {
					quicErr = r.err
				} else {
					tcpErr = r.err
				}
				cancel()
			case r.t == TransportQUIC:
				quicErr = r.err
				if !tcpStarted && won == nil && ctx.Err() == nil {
					tcpStarted = true
					running++
					start(TransportTCP, dialTCP)
				}
			default:
				tcpErr = r.err
			}
		}
	}
	switch {
	case won != nil:
		return won, nil
	case errors.Is(quicErr, ErrPinMismatch):
		return nil, quicErr
	case errors.Is(tcpErr, ErrPinMismatch):
		return nil, tcpErr
	case tcpErr == nil:
		return nil, quicErr
	}
	return nil, fmt.Errorf("QUIC: %v; TCP: %w", quicErr, tcpErr)
}

func (c *Client) handshake(ctx context.Context) error {
	ctrl, err := c.conn.openStream(ctx)
	if err != nil {
		return refusal(err)
	}
	c.ctrl = ctrl
	deadline, _ := ctx.Deadline()
	ctrl.SetDeadline(deadline)
	buf := getFrameBuf()
	defer putFrameBuf(buf)

	hello := helloFrame{Version: uint16(Version), AgentID: []byte(c.cfg.AgentID)}
	if _, err := rand.Read(hello.Nonce[:]); err != nil {
		return err
	}
	if _, err := ctrl.Write(hello.Append(buf[:0])); err != nil {
		return c.writeRefusal(buf, err)
	}
	_, p, err := c.readHandshakeFrame(buf, FrameChallenge)
	if err != nil {
		return err
	}
	ch, _, err := parseChallenge(p)
	if err != nil {
		return fmt.Errorf("CHALLENGE: %w", err)
	}
	exporter, err := exporterValue(c.conn.tlsState())
	if err != nil {
		return err
	}
	auth := authFrame{Proof: proof(c.cfg.Secret, hello.AgentID, &hello.Nonce, &ch.Nonce, exporter)}
	if _, err := ctrl.Write(auth.Append(buf[:0])); err != nil {
		return c.writeRefusal(buf, err)
	}
	_, p, err = c.readHandshakeFrame(buf, FrameOK)
	if err != nil {
		return err
	}
	ok, _, err := parseOK(p)
	if err != nil {
		return fmt.Errorf("OK: %w", err)
	}
	c.heartbeat = max(time.Duration(ok.HeartbeatMillis)*time.Millisecond, 100*time.Millisecond)
	ctrl.SetDeadline(time.Time{})
	return nil
}

// writeRefusal explains a failed handshake write. The server may have
// refused and closed while the write was still being confirmed (yamux then
// reports the write failed although it went out): its ERROR is then
// waiting to be read, and says more than the write error.
func (c *Client) writeRefusal(buf *frameBuf, err error) error {
	if _, _, rerr := c.readHandshakeFrame(buf, FrameOK); errors.Is(rerr, ErrRefused) {
		return rerr
	}
	return refusal(err)
}

// readHandshakeFrame reads the wanted frame, turning ERROR into a
// *RefusedError.
func (c *Client) readHandshakeFrame(buf *frameBuf, want FrameType) (FrameType, []byte, error) {
	typ, p, err := readFrame(c.ctrl, buf)
	if err != nil {
		return 0, nil, refusal(err)
	}
	switch typ {
	case want:
		return typ, p, nil
	case FrameError:
		ef, _, err := parseError(p)
		if err != nil {
			return 0, nil, fmt.Errorf("ERROR: %w", err)
		}
		return 0, nil, &RefusedError{Code: ef.Code, Reason: string(ef.Reason)}
	}
	return 0, nil, unexpected(typ, want)
}

// refusal maps the server's CONNECTION_CLOSE during the handshake to a
// *RefusedError (the ERROR frame may be lost when the connection closes).
func refusal(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return &RefusedError{Code: Code(ae.ErrorCode), Reason: ae.ErrorMessage}
	}
	return err
}

// sessionError maps how a session ended to an error for the caller.
func sessionError(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return &GoAwayError{Code: Code(ae.ErrorCode), Reason: ae.ErrorMessage}
	}
	var it *quic.IdleTimeoutError
	if errors.As(err, &it) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrHeartbeatTimeout, err)
	}
	return err
}

// RemoteAddr is the server's address.
func (c *Client) RemoteAddr() net.Addr { return c.conn.remoteAddr() }

// Transport is what carries the session: TransportQUIC or TransportTCP.
func (c *Client) Transport() Transport { return c.conn.transport() }

// Close ends the session at once. Idempotent.
func (c *Client) Close() error {
	c.conn.closeWithError(CodeShutdown, "agent closing")
	return nil
}

// Handler serves one stream opened by the server. It must answer the
// request with Accept or Reject; if it returns without doing so, the stream
// is refused with CodeInternal. ctx ends when the session is torn down.
type Handler func(ctx context.Context, r *Request)

// Request is a server-opened stream waiting for the agent's answer.
type Request struct {
	ID     uint64
	Kind   Kind
	Target string

	st       stream
	conn     conn
	answered bool
	sc       *streamConn
}

// Accept answers OPEN_OK and returns the stream as a net.Conn (with
// CloseWrite for half-close). The caller closes it.
func (r *Request) Accept() (net.Conn, error) {
	if r.answered {
		return nil, errors.New("tunnelproto.Accept: request already answered")
	}
	r.answered = true
	var b [headerLen + 8]byte
	if _, err := r.st.Write((&openOKFrame{RequestID: r.ID}).Append(b[:0])); err != nil {
		r.st.abort()
		return nil, fmt.Errorf("tunnelproto.Accept: %w", err)
	}
	r.sc = newStreamConn(r.st, r.conn, nil)
	return r.sc, nil
}

// Reject answers ERROR with code and reason and ends the stream.
func (r *Request) Reject(code Code, reason string) error {
	if r.answered {
		return errors.New("tunnelproto.Reject: request already answered")
	}
	r.answered = true
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	r.st.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := r.st.Write((&errorFrame{Code: code, Reason: []byte(reason)}).Append(buf[:0]))
	r.st.stopReading()
	r.st.Close()
	if err != nil {
		return fmt.Errorf("tunnelproto.Reject: %w", err)
	}
	return nil
}

// Serve hands every stream the server opens to h, each in its own
// goroutine, and keeps the heartbeat going. It returns when the session
// ends, with the reason (a *GoAwayError for a server GOAWAY or close,
// ErrHeartbeatTimeout, …), or when ctx is done: it then sends GOAWAY,
// waits up to DrainTimeout for in-flight handlers, closes the connection and
// returns nil. Either way it then closes its side of the control stream and
// lets the server close the connection (so no stream loses its last bytes),
// closing it itself when DrainTimeout runs out. Serve waits for every
// goroutine it started and closes the connection before returning.
func (c *Client) Serve(ctx context.Context, h Handler) error {
	handlerCtx, cancelHandlers := context.WithCancel(context.Background())
	defer cancelHandlers()
	acceptCtx, stopAccept := context.WithCancel(ctx)
	defer stopAccept()

	var ctrlWG sync.WaitGroup
	var ctrlErr error
	ctrlWG.Add(2)
	go func() {
		defer ctrlWG.Done()
		ctrlErr = c.readControl()
		stopAccept()
	}()
	pingDone := make(chan struct{})
	go func() {
		defer ctrlWG.Done()
		c.sendPings(pingDone)
	}()

	var handlers sync.WaitGroup
	var acceptErr error
	for {
		st, err := c.conn.acceptStream(acceptCtx)
		if err != nil {
			acceptErr = err
			break
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			c.serveStream(handlerCtx, st, h)
		}()
	}

	local := ctx.Err() != nil
	if local {
		c.writeCtrl(&goAwayFrame{Code: CodeShutdown, Reason: []byte("agent shutting down")})
	}
	drained := make(chan struct{})
	go func() {
		handlers.Wait()
		close(drained)
	}()
	timer := time.NewTimer(c.cfg.DrainTimeout)
	select {
	case <-drained:
		// The last bytes of the streams may still be in flight: closing the
		// connection now would lose them. The server closes it once its ends
		// of the streams are done; FIN on the control stream tells it this
		// side is.
		close(pingDone)
		c.wmu.Lock()
		c.ctrl.Close()
		c.wmu.Unlock()
		select {
		case <-c.conn.context().Done():
		case <-timer.C:
		}
	case <-timer.C:
		c.log.Warn("drain timeout: cutting in-flight streams", "timeout", c.cfg.DrainTimeout)
		close(pingDone)
	}
	timer.Stop()
	cancelHandlers()
	c.conn.closeWithError(CodeShutdown, "agent closing")
	<-drained
	ctrlWG.Wait()

	if local {
		return nil
	}
	if ctrlErr != nil {
		return fmt.Errorf("tunnelproto.Serve: %w", sessionError(ctrlErr))
	}
	return fmt.Errorf("tunnelproto.Serve: %w", sessionError(acceptErr))
}

// readControl reads PONG, MEMBERS and GOAWAY until the session ends. Silence longer
// than the heartbeat timeout ends it.
func (c *Client) readControl() error {
	timeout := c.cfg.HeartbeatTimeout
	if timeout == 0 {
		timeout = 3 * c.heartbeat
	}
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	for {
		c.ctrl.SetReadDeadline(time.Now().Add(timeout))
		typ, p, err := readFrame(c.ctrl, buf)
		if err != nil {
			if isTimeout(err) {
				c.conn.closeWithError(CodeHeartbeatTimeout, CodeHeartbeatTimeout.String())
				return fmt.Errorf("%w: no PONG for %v", ErrHeartbeatTimeout, timeout)
			}
			return err
		}
		switch typ {
		case FramePong:
		case FrameMembers:
			if c.cfg.OnMembers == nil {
				continue
			}
			f, _, err := parseMembers(p)
			if err != nil {
				c.log.Warn("ignoring a malformed MEMBERS frame", "err", err)
				continue
			}
			c.cfg.OnMembers(f.members())
		case FrameGoAway:
			ga, _, _ := parseGoAway(p)
			// The server closes the connection next; its close carries the
			// same code, so Serve reports the GOAWAY either way.
			return &GoAwayError{Code: ga.Code, Reason: string(ga.Reason)}
		}
	}
}

func (c *Client) sendPings(done <-chan struct{}) {
	t := time.NewTicker(c.heartbeat)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-done:
			return
		case <-t.C:
			seq++
			if err := c.writeCtrl(&pingFrame{Seq: seq}); err != nil {
				return
			}
		}
	}
}

func (c *Client) writeCtrl(f frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := c.ctrl.Write(f.Append(c.wbuf[:0]))
	return err
}

// serveStream reads the OPEN and runs the handler.
func (c *Client) serveStream(ctx context.Context, st stream, h Handler) {
	buf := getFrameBuf()
	st.SetReadDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	typ, p, err := readFrame(st, buf)
	if err != nil || typ != FrameOpen {
		putFrameBuf(buf)
		c.log.Warn("stream without OPEN", "type", typ.String(), "err", err)
		st.abort()
		return
	}
	open, _, err := parseOpen(p)
	st.SetReadDeadline(time.Time{})
	r := &Request{ID: open.RequestID, Kind: open.Kind, Target: string(open.Target), st: st, conn: c.conn}
	putFrameBuf(buf)
	if err != nil {
		r.Reject(CodeProtocol, err.Error())
		return
	}
	if r.Kind != KindHTTP && r.Kind != KindTCP {
		r.Reject(CodeProtocol, fmt.Sprintf("unknown kind %d", r.Kind))
		return
	}
	h(ctx, r)
	switch {
	case !r.answered:
		r.Reject(CodeInternal, "handler did not answer")
	case r.sc != nil:
		r.sc.Close() // the handler should have; make sure the stream is released
	}
}
