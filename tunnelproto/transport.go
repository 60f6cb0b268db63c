package tunnelproto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
)

// Transport names what carries an agent's session: QUIC, or TCP+TLS 1.3
// with yamux streams for networks that drop UDP. The frames, the handshake
// and the pinning are the same on both.
type Transport uint8

// Transports.
const (
	// TransportAuto (the agent's default) tries QUIC and falls back to
	// TCP+TLS on the same port number when QUIC does not come up.
	TransportAuto Transport = iota
	TransportQUIC
	TransportTCP
)

func (t Transport) String() string {
	switch t {
	case TransportAuto:
		return "auto"
	case TransportQUIC:
		return "quic"
	case TransportTCP:
		return "tcp"
	}
	return fmt.Sprintf("transport(%d)", uint8(t))
}

// ParseTransport parses "auto", "quic" or "tcp".
func ParseTransport(s string) (Transport, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return TransportAuto, nil
	case "quic":
		return TransportQUIC, nil
	case "tcp":
		return TransportTCP, nil
	}
	return 0, fmt.Errorf("%w: transport %q: want auto, quic or tcp", ErrInvalidConfig, s)
}

// conn is one agent connection on either transport: a QUIC connection, or
// a yamux session over TLS over TCP. The session logic above it (handshake,
// heartbeats, OPEN) is the same for both.
type conn interface {
	openStream(ctx context.Context) (stream, error)
	acceptStream(ctx context.Context) (stream, error)
	// closeWithError ends the connection. Over QUIC the peer learns code and
	// reason from CONNECTION_CLOSE; over TCP only from an ERROR or GOAWAY
	// frame written before, which closeWithError gives a moment to arrive.
	closeWithError(code Code, reason string)
	// context is cancelled once the connection has ended.
	context() context.Context
	tlsState() tls.ConnectionState
	localAddr() net.Addr
	remoteAddr() net.Addr
	transport() Transport
}

// stream is one bidirectional stream of a conn.
type stream interface {
	io.Reader
	io.Writer
	// Close sends FIN after the data written so far; reading goes on.
	Close() error
	// abort resets both directions at once; unread and unsent data is lost.
	abort()
	// stopReading tells the peer that nothing more will be read: over QUIC
	// its writes fail at once (STOP_SENDING); over TCP, where yamux has no
	// such signal, a stream whose peer has not finished within
	// closeGrace is reset.
	stopReading()
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Stream error codes used when a QUIC data stream is aborted.
const (
	streamCodeClosed quic.StreamErrorCode = 0
	streamCodeAbort  quic.StreamErrorCode = 1
)

// quicConn is a conn over QUIC.
type quicConn struct{ c *quic.Conn }

func (q quicConn) openStream(ctx context.Context) (stream, error) {
	st, err := q.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{st}, nil
}

func (q quicConn) acceptStream(ctx context.Context) (stream, error) {
	st, err := q.c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{st}, nil
}

func (q quicConn) closeWithError(code Code, reason string) {
	q.c.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

func (q quicConn) context() context.Context      { return q.c.Context() }
func (q quicConn) tlsState() tls.ConnectionState { return q.c.ConnectionState().TLS }
func (q quicConn) localAddr() net.Addr           { return q.c.LocalAddr() }
func (q quicConn) remoteAddr() net.Addr          { return q.c.RemoteAddr() }
func (q quicConn) transport() Transport          { return TransportQUIC }

// quicStream is a stream over QUIC.
type quicStream struct{ *quic.Stream }

func (s quicStream) abort() {
	s.CancelRead(streamCodeAbort)
	s.CancelWrite(streamCodeAbort)
}

// stopReading tells the peer to stop sending (STOP_SENDING).
func (s quicStream) stopReading() { s.CancelRead(streamCodeClosed) }

// isTimeout reports a deadline or idle timeout on either transport.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
