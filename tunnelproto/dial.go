package tunnelproto

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Dial opens a stream to the agent and asks it to connect to target
// (host:port). It returns once the agent answered OPEN_OK: the net.Conn then
// carries raw bytes both ways and supports CloseWrite for half-close. Errors
// wrap ErrAgentOffline, ErrTargetNotAllowed (decided by the server from the
// agent's allowed targets, or by the agent's own allow list) or
// ErrDialFailed (with the agent's reason).
func (s *Server) Dial(ctx context.Context, agentID string, kind Kind, target string) (net.Conn, error) {
	conn, err := s.dial(ctx, agentID, kind, target)
	if err != nil {
		return nil, fmt.Errorf("tunnelproto.Dial %s %s via agent %q: %w", kind, target, agentID, err)
	}
	return conn, nil
}

func (s *Server) dial(ctx context.Context, agentID string, kind Kind, target string) (net.Conn, error) {
	if kind != KindHTTP && kind != KindTCP {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrInvalidConfig, kind)
	}
	if err := validTarget(target); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, ErrServerClosed
	}
	_, allowed, ok := s.cfg.Auth.Lookup(agentID)
	if !ok {
		return nil, fmt.Errorf("%w: unknown agent", ErrAgentOffline)
	}
	if !TargetAllowed(allowed, target) {
		return nil, fmt.Errorf("%w: not in the agent's allowed targets (server)", ErrTargetNotAllowed)
	}
	s.mu.Lock()
	sess := s.sessions[agentID]
	s.mu.Unlock()
	// A draining server opens no new streams, also before Shutdown has
	// reached this session to mark it.
	if sess == nil || sess.draining.Load() || s.draining.Load() {
		return nil, ErrAgentOffline
	}

	st, err := sess.conn.openStream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrAgentOffline, err)
	}
	id := s.nextID.Add(1)
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	if _, err := st.Write((&openFrame{RequestID: id, Kind: kind, Target: []byte(target)}).Append(buf[:0])); err != nil {
		st.abort()
		return nil, fmt.Errorf("%w: writing OPEN: %v", ErrAgentOffline, err)
	}

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.cfg.OpenTimeout)
	}
	st.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.SetReadDeadline(time.Unix(1, 0)) })
	typ, p, err := readFrame(st, buf)
	if !stop() || err != nil {
		st.abort()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isTimeout(err) {
			return nil, fmt.Errorf("no answer to OPEN within %v: %w", s.cfg.OpenTimeout, os.ErrDeadlineExceeded)
		}
		return nil, fmt.Errorf("reading answer to OPEN: %w", err)
	}
	st.SetReadDeadline(time.Time{})
	switch typ {
	case FrameOpenOK:
		ok, _, err := parseOpenOK(p)
		if err != nil || ok.RequestID != id {
			st.abort()
			return nil, fmt.Errorf("%w: bad OPEN_OK", ErrMalformed)
		}
	case FrameError:
		ef, _, err := parseError(p)
		st.abort()
		if err != nil {
			return nil, fmt.Errorf("%w: ERROR: %v", ErrMalformed, err)
		}
		switch ef.Code {
		case CodeNotAllowed:
			return nil, fmt.Errorf("%w (agent): %s", ErrTargetNotAllowed, ef.Reason)
		case CodeDialFailed:
			return nil, fmt.Errorf("%w: %s", ErrDialFailed, ef.Reason)
		}
		return nil, fmt.Errorf("agent refused: %s: %s", ef.Code, ef.Reason)
	default:
		st.abort()
		return nil, unexpected(typ, FrameOpenOK)
	}
	sess.streams.Add(1)
	s.active.Add(1)
	return newStreamConn(st, sess.conn, func() {
		sess.streams.Add(-1)
		s.active.Add(-1)
	}), nil
}

// validTarget checks host:port syntax and the length limit.
func validTarget(target string) error {
	if len(target) == 0 || len(target) > MaxTargetLen {
		return fmt.Errorf("%w: target must be 1 to %d bytes", ErrInvalidConfig, MaxTargetLen)
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%w: target %q is not host:port", ErrInvalidConfig, target)
	}
	return nil
}

// TargetAllowed reports whether target (host:port) is in allowed. Matching
// is exact, except that host names compare case-insensitively. Both ends of
// the tunnel use it.
func TargetAllowed(allowed []string, target string) bool {
	th, tp, err := net.SplitHostPort(target)
	if err != nil {
		return false
	}
	for _, a := range allowed {
		ah, ap, err := net.SplitHostPort(a)
		if err == nil && ap == tp && strings.EqualFold(ah, th) {
			return true
		}
	}
	return false
}

// streamConn is a data stream as a net.Conn.
type streamConn struct {
	st      stream
	local   net.Addr
	remote  net.Addr
	onClose func()

	// quic-go forbids closing the send side concurrently with Write.
	wmu       sync.Mutex // serializes Write, CloseWrite and Close on st
	closeOnce sync.Once
}

func newStreamConn(st stream, c conn, onClose func()) *streamConn {
	return &streamConn{st: st, local: c.localAddr(), remote: c.remoteAddr(), onClose: onClose}
}

func (c *streamConn) Read(p []byte) (int, error) { return c.st.Read(p) }

func (c *streamConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.st.Write(p)
}

// CloseWrite sends FIN after the data written so far (half-close); reading
// continues until the peer's FIN.
func (c *streamConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.st.Close()
}

// Close ends both directions: FIN after pending data, and no more reading
// (the peer is told to stop sending). A Write blocked in another goroutine
// is cut short. Idempotent.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.st.stopReading()
		c.st.SetWriteDeadline(time.Unix(1, 0)) // unblock a concurrent Write so wmu frees
		c.wmu.Lock()
		c.st.Close()
		c.wmu.Unlock()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr                { return c.local }
func (c *streamConn) RemoteAddr() net.Addr               { return c.remote }
func (c *streamConn) SetDeadline(t time.Time) error      { return c.st.SetDeadline(t) }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.st.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }
