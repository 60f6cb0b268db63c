package tunnelproto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// closeGrace is how long a stream closed by this end (Close after
// stopReading) waits for the peer to finish its side before it is reset:
// the TCP transport's stand-in for QUIC's STOP_SENDING, late enough that
// the last bytes written before Close are read first.
var closeGrace = 5 * time.Second

// maxTCPStreams bounds the data streams a server keeps open at once on one
// TCP session, as the agent's stream limit (1024) does over QUIC: Dial
// waits for a free one.
var maxTCPStreams = 1024

// connClosedError is how operations on a TCP connection fail once it has
// ended.
type connClosedError struct {
	local  bool // ended by this end, with code and reason
	code   Code
	reason string
	cause  error // for an end by the peer or the network: what the reader saw
}

func (e *connClosedError) Error() string {
	if e.local {
		return fmt.Sprintf("tunnelproto: connection closed: %s: %s", e.code, e.reason)
	}
	return fmt.Sprintf("tunnelproto: connection closed by peer: %v", e.cause)
}

// tcpConn is a conn over TLS 1.3 over TCP, its streams multiplexed by yamux.
type tcpConn struct {
	raw    net.Conn
	wire   *batchConn // raw, as TLS writes to it
	tls    *tls.Conn
	ycfg   *yamux.Config
	server bool
	ctx    context.Context
	cancel context.CancelFunc

	refuse     sync.WaitGroup // the server's loop refusing streams the agent opens
	refuseOnce sync.Once
	slots      chan struct{} // server: one per open data stream, see maxTCPStreams

	mu     sync.Mutex // guards the fields below
	mux    *muxConn
	sess   *yamux.Session
	closed *connClosedError
}

func newTCPConn(raw net.Conn, tlsConf *tls.Config, server bool, window uint64, log *slog.Logger) *tcpConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &tcpConn{raw: raw, wire: &batchConn{Conn: raw}, server: server, ycfg: yamuxConfig(window, log), ctx: ctx, cancel: cancel}
	if server {
		c.tls = tls.Server(c.wire, tlsConf)
		c.slots = make(chan struct{}, maxTCPStreams)
	} else {
		c.tls = tls.Client(c.wire, tlsConf)
	}
	return c
}

// yamuxConfig: keep-alives off (PING/PONG on the control stream do that
// job), no close timeout (resets are explicit, see muxConn.reset), the
// receive window as large as QUIC's per-stream window, logs at debug level.
func yamuxConfig(window uint64, log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.MaxStreamWindowSize = uint32(max(window, 256<<10))
	c.StreamCloseTimeout = 0
	c.LogOutput = nil
	c.Logger = yamuxLogger{log}
	return c
}

// yamuxLogger sends yamux's log lines to slog at debug level: they are
// about frames for streams already reset, which are expected here.
type yamuxLogger struct{ log *slog.Logger }

func (l yamuxLogger) Print(v ...any) { l.log.Debug(strings.TrimSpace(fmt.Sprint(v...))) }
func (l yamuxLogger) Printf(format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (l yamuxLogger) Println(v ...any) { l.log.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }

// newServerTCPConn wraps an accepted TCP connection; handshake runs TLS.
func newServerTCPConn(nc net.Conn, cfg ServerConfig) *tcpConn {
	return newTCPConn(nc, cfg.tlsConfig(), true, cfg.MaxStreamReceiveWindow, cfg.Logger)
}

// handshake runs the TLS handshake, checks ALPN and starts yamux.
func (c *tcpConn) handshake(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	if err := c.tls.HandshakeContext(ctx); err != nil {
		return err
	}
	if p := c.tls.ConnectionState().NegotiatedProtocol; p != ALPN {
		return fmt.Errorf("ALPN %q, want %q", p, ALPN)
	}
	mux := newMuxConn(c.raw, c.wire, c.tls, c.cancel)
	var sess *yamux.Session
	var err error
	if c.server {
		sess, err = yamux.Server(mux, c.ycfg)
	} else {
		sess, err = yamux.Client(mux, c.ycfg)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.mux, c.sess = mux, sess
	closed := c.closed != nil
	c.mu.Unlock()
	if closed {
		sess.Close()
		return net.ErrClosed
	}
	return nil
}

// dialTCP connects over TCP+TLS, checks the pin and starts yamux.
func dialTCP(ctx context.Context, cfg ClientConfig) (conn, error) {
	tlsConf, pinErr := clientTLSConfig(cfg)
	d := net.Dialer{KeepAlive: 15 * time.Second, LocalAddr: cfg.localAddr}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := newTCPConn(raw, tlsConf, false, cfg.MaxStreamReceiveWindow, cfg.Logger)
	stop := context.AfterFunc(ctx, c.cancel)
	err = c.handshake(cfg.HandshakeTimeout)
	if !stop() && err == nil {
		err = ctx.Err() // given up on while it succeeded
	}
	if err != nil {
		c.closeWithError(CodeNone, "")
		if perr := pinErr(); perr != nil {
			return nil, perr
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return c, nil
}

func (c *tcpConn) session() (*yamux.Session, *muxConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess, c.mux
}

// closedErr says why the connection ended.
func (c *tcpConn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed != nil {
		return c.closed
	}
	var cause error = io.EOF
	if c.mux != nil {
		if err := c.mux.readError(); err != nil {
			cause = err
		}
	}
	return &connClosedError{cause: cause}
}

// sessionErr maps a yamux error: once the session is gone, to why.
func (c *tcpConn) sessionErr(err error) error {
	if sess, _ := c.session(); sess == nil || sess.IsClosed() {
		return c.closedErr()
	}
	return err
}

func (c *tcpConn) openStream(ctx context.Context) (stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sess, _ := c.session()
	if sess == nil {
		return nil, c.closedErr()
	}
	release := func() {}
	if c.slots != nil {
		select {
		case c.slots <- struct{}{}:
			release = func() { <-c.slots }
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.closedErr()
		}
	}
	st, err := sess.OpenStream()
	if err != nil {
		release()
		return nil, c.sessionErr(err)
	}
	ts := &tcpStream{Stream: st, c: c}
	ts.release = sync.OnceFunc(release)
	return ts, nil
}

func (c *tcpConn) acceptStream(ctx context.Context) (stream, error) {
	sess, _ := c.session()
	if sess == nil {
		return nil, c.closedErr()
	}
	st, err := sess.AcceptStreamWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.sessionErr(err)
	}
	if c.server {
		// The agent opens exactly one stream, the control stream (QUIC's
		// stream limit says so there): reset any other it opens.
		c.refuseOnce.Do(func() {
			c.refuse.Go(func() {
				for {
					st, err := sess.AcceptStream()
					if err != nil {
						return
					}
					(&tcpStream{Stream: st, c: c}).abort()
				}
			})
		})
	}
	return &tcpStream{Stream: st, c: c}, nil
}

func (c *tcpConn) closeWithError(code Code, reason string) {
	c.mu.Lock()
	if c.closed == nil {
		c.closed = &connClosedError{local: true, code: code, reason: reason}
	}
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		c.raw.Close()
		c.cancel()
		return
	}
	sess.Close() // muxConn.Close: FIN, linger, close, cancel
	c.refuse.Wait()
}

func (c *tcpConn) context() context.Context      { return c.ctx }
func (c *tcpConn) tlsState() tls.ConnectionState { return c.tls.ConnectionState() }
func (c *tcpConn) localAddr() net.Addr           { return c.raw.LocalAddr() }
func (c *tcpConn) remoteAddr() net.Addr          { return c.raw.RemoteAddr() }
func (c *tcpConn) transport() Transport          { return TransportTCP }

// tcpStream is a yamux stream with errors mapped to what callers expect of
// a net.Conn (deadlines as os.ErrDeadlineExceeded, a dead connection as
// *connClosedError).
type tcpStream struct {
	*yamux.Stream
	c       *tcpConn
	reset   atomic.Bool // abort was called: fail at once, before yamux has seen the RST
	release func()      // frees the stream's slot (openStream); nil for accepted streams
}

func (s *tcpStream) done() {
	if s.release != nil {
		s.release()
	}
}

func (s *tcpStream) Read(p []byte) (int, error) {
	if s.reset.Load() {
		return 0, yamux.ErrConnectionReset
	}
	n, err := s.Stream.Read(p)
	return n, s.mapErr(err)
}

func (s *tcpStream) Write(p []byte) (int, error) {
	if s.reset.Load() {
		return 0, yamux.ErrConnectionReset
	}
	n, err := s.Stream.Write(p)
	return n, s.mapErr(err)
}

func (s *tcpStream) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case s.reset.Load():
		return yamux.ErrConnectionReset
	case errors.Is(err, yamux.ErrTimeout):
		return os.ErrDeadlineExceeded
	case errors.Is(err, yamux.ErrConnectionReset):
		return err
	}
	return s.c.sessionErr(err)
}

func (s *tcpStream) abort() {
	s.done()
	if s.reset.Swap(true) {
		return
	}
	// Wake this end's blocked calls now; yamux drops the stream when the
	// RST handed to its reader arrives.
	s.Stream.SetDeadline(time.Unix(1, 0))
	if _, mux := s.c.session(); mux != nil {
		mux.reset(s.StreamID())
	}
}

// stopReading wakes local readers and, unless the peer has already
// finished its side, resets the stream after closeGrace.
func (s *tcpStream) stopReading() {
	s.done()
	if s.peerFinished() {
		return
	}
	time.AfterFunc(closeGrace, func() {
		if !s.peerFinished() {
			s.abort()
		}
	})
}

// peerFinished discards what is buffered and reports whether the peer's
// FIN (or a reset, or the connection's end) has arrived. It leaves reads
// failing at once with a deadline in the past.
func (s *tcpStream) peerFinished() bool {
	s.Stream.SetReadDeadline(time.Unix(1, 0))
	var buf [4 << 10]byte
	for {
		_, err := s.Stream.Read(buf[:])
		if err != nil {
			return !errors.Is(err, yamux.ErrTimeout)
		}
	}
}
