package tunnelproto

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
)

// Server accepts agents' connections (QUIC, and TCP+TLS on the same port
// number), authenticates them and opens streams to them on behalf of the
// gateway (Dial, Forward, Transport).
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	udp      net.PacketConn // nil with DisableQUIC, like tr and ln
	tr       *quic.Transport
	ln       *quic.Listener
	tcpLn    net.Listener // nil with DisableTCP
	nonces   *nonceCache
	limit    *limiter
	nextID   atomic.Uint64
	active   atomic.Int64 // data streams handed out by Dial and not yet closed
	draining atomic.Bool  // Shutdown began: the listener is closed on purpose

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // accept loop, handshakes, sessions

	mu         sync.Mutex // guards the fields below
	closed     bool
	serving    bool
	sessions   map[string]*session
	pending    map[conn]string            // connections still in the handshake, by source IP
	pendingIP  map[string]int             // how many of them each source IP has
	transports map[string]*http.Transport // by agent id, see Transport
	members    []byte                     // the encoded MEMBERS frame; nil: none (SetMembers)
}

// NewServer validates cfg and binds the UDP socket and the TCP listener
// (same port number), so Addr is known before Serve runs.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tunnelproto.NewServer: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "tunnel"),
		nonces:    newNonceCache(10*time.Minute, 1<<16),
		limit:     newLimiter(cfg.AuthFailureBurst, cfg.AuthFailureRefill, 1<<14),
		done:      make(chan struct{}),
		sessions:  make(map[string]*session),
		pending:   make(map[conn]string),
		pendingIP: make(map[string]int),

		transports: make(map[string]*http.Transport),
	}
	if err := s.listen(); err != nil {
		return nil, fmt.Errorf("tunnelproto.NewServer: %w", err)
	}
	return s, nil
}

// listen binds UDP for QUIC and TCP on the same port number. When the port
// is chosen by the system (":0"), one free for both is looked for.
func (s *Server) listen() error {
	cfg := s.cfg
	if cfg.DisableQUIC {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return err
		}
		s.tcpLn = ln
		return nil
	}
	udpAddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenUDP("udp", udpAddr)
		if err != nil {
			return err
		}
		if !cfg.DisableTCP {
			bound := udp.LocalAddr().(*net.UDPAddr)
			tcpAddr := &net.TCPAddr{IP: udpAddr.IP, Port: bound.Port, Zone: udpAddr.Zone}
			ln, err := net.ListenTCP("tcp", tcpAddr)
			if err != nil {
				udp.Close()
				if udpAddr.Port == 0 && attempt < 20 {
					continue // the system's UDP port is taken for TCP: another one
				}
				return fmt.Errorf("TCP fallback listener on the QUIC port: %w", err)
			}
			s.tcpLn = ln
		}
		tr := &quic.Transport{Conn: udp, StatelessResetKey: resetKey(cfg.TLSCert)}
		ln, err := tr.Listen(cfg.tlsConfig(), cfg.quicConfig())
		if err != nil {
			tr.Close()
			udp.Close()
			if s.tcpLn != nil {
				s.tcpLn.Close()
			}
			return err
		}
		s.udp, s.tr, s.ln = udp, tr, ln
		return nil
	}
}

// Addr is the address the server listens on: the UDP address, whose port
// number the TCP listener shares (the TCP address with DisableQUIC).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return s.tcpLn.Addr()
	}
	return s.ln.Addr()
}

// TCPAddr is the TCP+TLS listener's address; nil with DisableTCP.
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Fingerprint is the pin agents need ("sha256:<hex>").
func (s *Server) Fingerprint() string { return Fingerprint(s.cfg.TLSCert) }

// Serve accepts agents until ctx is done or Close is called, then closes the
// server. It returns nil after a Close or a cancelled ctx. It may be called
// once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.serving {
		s.mu.Unlock()
		return fmt.Errorf("tunnelproto.Serve: %w", ErrServerClosed)
	}
	s.serving = true
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, s.closeListeners)
	defer stop()
	errc := make(chan error, 2)
	loops := 0
	if s.ln != nil {
		loops++
		go func() { errc <- s.acceptQUIC() }()
	}
	if s.tcpLn != nil {
		loops++
		go func() { errc <- s.acceptTCP() }()
	}
	var first error
	for range loops {
		if err := <-errc; err != nil && first == nil {
			first = err
			s.closeListeners() // one listener failed: stop the other too
		}
	}
	if ctx.Err() != nil {
		return s.Close()
	}
	if first == nil || s.isClosed() || s.draining.Load() {
		return nil
	}
	return fmt.Errorf("tunnelproto.Serve: %w", first)
}

func (s *Server) closeListeners() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.tcpLn != nil {
		s.tcpLn.Close()
	}
}

// stopping reports whether the listeners were closed on purpose.
func (s *Server) stopping() bool { return s.isClosed() || s.draining.Load() }

func (s *Server) acceptQUIC() error {
	for {
		qc, err := s.ln.Accept(context.Background())
		if err != nil {
			if s.stopping() || errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return err
		}
		c := quicConn{qc}
		switch s.track(c) {
		case trackClosed:
			c.closeWithError(CodeShutdown, CodeShutdown.String())
			return nil
		case trackFull:
			c.closeWithError(CodeRateLimited, CodeRateLimited.String())
			continue
		}
		go func() {
			defer s.wg.Done()
			s.handleConn(c)
		}()
	}
}

func (s *Server) acceptTCP() error {
	var backoff time.Duration
	for {
		nc, err := s.tcpLn.Accept()
		if err != nil {
			if s.stopping() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors or an aborted connection: wait and go on,
				// as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("tunnel: TCP accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		c := newServerTCPConn(nc, s.cfg)
		switch s.track(c) {
		case trackClosed:
			c.closeWithError(CodeShutdown, CodeShutdown.String())
			return nil
		case trackFull:
			nc.Close() // before TLS: nothing to say
			continue
		}
		go func() {
			defer s.wg.Done()
			if err := c.handshake(s.cfg.HandshakeTimeout); err != nil {
				// A TLS failure (an agent refusing our certificate, a port
				// scanner) never reaches the agent protocol, as over QUIC.
				s.log.Debug("tunnel: TLS handshake over TCP failed", "remote", nc.RemoteAddr().String(), "err", err)
				c.closeWithError(CodeNone, "")
				s.untrack(c)
				return
			}
			s.handleConn(c)
		}()
	}
}

type trackResult int

const (
	trackOK     trackResult = iota
	trackClosed             // the server is closed
	trackFull               // too many unauthenticated connections (MaxPending*)
)

// track registers a connection in the handshake and adds it to wg, unless
// the server is closed or the caps on unauthenticated connections, per
// source address and in total, are reached.
func (s *Server) track(c conn) trackResult {
	ip := c.remoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return trackClosed
	}
	if len(s.pending) >= s.cfg.MaxPending || s.pendingIP[ip] >= s.cfg.MaxPendingPerAddr {
		return trackFull
	}
	s.pending[c] = ip
	s.pendingIP[ip]++
	s.wg.Add(1)
	return trackOK
}

func (s *Server) untrack(c conn) {
	s.mu.Lock()
	if ip, ok := s.pending[c]; ok {
		delete(s.pending, c)
		if s.pendingIP[ip]--; s.pendingIP[ip] <= 0 {
			delete(s.pendingIP, ip)
		}
	}
	s.mu.Unlock()
}

// Close cuts every session (GOAWAY, then CONNECTION_CLOSE with
// CodeShutdown), stops listening and waits for every goroutine the server
// started. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		pending := make([]conn, 0, len(s.pending))
		for c := range s.pending {
			pending = append(pending, c)
		}
		s.mu.Unlock()

		s.closeListeners()
		var closing sync.WaitGroup
		for _, c := range pending {
			closing.Go(func() { c.closeWithError(CodeShutdown, CodeShutdown.String()) })
		}
		for _, sess := range s.Sessions() {
			closing.Go(func() { s.endSession(sess.sess, CodeShutdown, "server shutting down") })
		}
		closing.Wait()
		s.wg.Wait()
		s.closeAllIdle()
		if s.tr != nil {
			s.tr.Close()
			s.udp.Close()
		}
	})
	return nil
}

// Shutdown drains: it stops accepting agents, sends GOAWAY to every session
// so the gateway stops routing new requests to them, waits for streams
// handed out by Dial to be closed or for ctx to end, then Closes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.closeListeners()
	for _, info := range s.Sessions() {
		info.sess.draining.Store(true)
		info.sess.goAway(CodeShutdown, "server draining")
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
	for s.active.Load() > 0 && err == nil {
		// Idle keep-alive streams of our own Transports count as active;
		// close them as requests finish.
		s.closeAllIdle()
		select {
		case <-tick.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.Close()
	return err
}

// SessionInfo describes one live agent session.
type SessionInfo struct {
	AgentID    string
	RemoteAddr string
	Transport  Transport // TransportQUIC or TransportTCP
	Since      time.Time
	LastSeen   time.Time
	Streams    int // data streams open now

	sess *session
}

// Sessions lists the live sessions.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess.info())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(a.AgentID, b.AgentID) })
	return out
}

// Online reports whether the agent has a live session and when the server
// last heard from it.
func (s *Server) Online(agentID string) (bool, time.Time) {
	s.mu.Lock()
	sess := s.sessions[agentID]
	s.mu.Unlock()
	if sess == nil {
		return false, time.Time{}
	}
	return true, sess.lastSeenTime()
}

// Disconnect cuts the agent's live session at once (GOAWAY, then
// CONNECTION_CLOSE with CodeRevoked): used when its secret is revoked or
// rotated. The agent may reconnect and must then authenticate afresh. It
// reports whether there was a session.
func (s *Server) Disconnect(agentID string) bool {
	s.mu.Lock()
	sess := s.sessions[agentID]
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	s.endSession(sess, CodeRevoked, "disconnected by the server")
	return true
}

func (s *Server) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	lvl := slog.LevelInfo
	if e.Kind == EventRejected {
		// Anyone who reaches the port can fail a handshake as fast as we
		// answer: a line each would let them write without bound. OnEvent
		// gets every one (the gateway tallies them into the audit log).
		lvl = slog.LevelDebug
	}
	attrs := []any{"agent", e.AgentID, "remote", e.RemoteAddr}
	if e.Kind == EventRejected || e.Kind == EventOffline {
		attrs = append(attrs, "code", e.Code.String(), "reason", e.Reason)
	}
	s.log.Log(context.Background(), lvl, "agent "+string(e.Kind), attrs...)
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// handleConn runs the handshake and then the session of one connection.
func (s *Server) handleConn(c conn) {
	sess := s.handshake(c)
	s.untrack(c)
	if sess == nil {
		return
	}
	if !s.register(sess) {
		return
	}
	s.sendMembers(sess)
	sess.run()
}

// handshake runs HELLO → CHALLENGE → AUTH → OK on the control stream. On
// failure it answers ERROR, closes the connection, emits EventRejected and
// returns nil.
func (s *Server) handshake(conn conn) *session {
	remote := conn.remoteAddr().String()
	ip := remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		ip = host
	}
	ctx, cancel := context.WithTimeout(conn.context(), s.cfg.HandshakeTimeout)
	defer cancel()
	var agentID string
	reject := func(ctrl stream, code Code, reason string) *session {
		if ctrl != nil {
			wire := code.String() // never more detail than the code: no hints for guessers
			b := (&errorFrame{Code: code, Reason: []byte(wire)}).Append(nil)
			ctrl.SetWriteDeadline(time.Now().Add(time.Second))
			ctrl.Write(b)
			ctrl.Close()
		}
		conn.closeWithError(code, code.String())
		s.emit(Event{Kind: EventRejected, AgentID: agentID, RemoteAddr: remote, Code: code, Reason: reason})
		return nil
	}

	ctrl, err := conn.acceptStream(ctx)
	if err != nil {
		if s.isClosed() {
			return nil
		}
		return reject(nil, CodeHandshakeTimeout, "no control stream: "+err.Error())
	}
	deadline, _ := ctx.Deadline()
	ctrl.SetDeadline(deadline)
	buf := getFrameBuf()
	defer putFrameBuf(buf)

	typ, p, err := readFrame(ctrl, buf)
	switch {
	case errors.Is(err, ErrUnsupportedVersion):
		return reject(ctrl, CodeUnsupportedVersion, err.Error())
	case isTimeout(err):
		return reject(ctrl, CodeHandshakeTimeout, "no HELLO in time")
	case err != nil:
		return reject(ctrl, CodeProtocol, "reading HELLO: "+err.Error())
	case typ != FrameHello:
		return reject(ctrl, CodeProtocol, unexpected(typ, FrameHello).Error())
	}
	hello, _, err := parseHello(p)
	if err != nil {
		return reject(ctrl, CodeProtocol, "HELLO: "+err.Error())
	}
	agentID = string(hello.AgentID)
	if hello.Version != uint16(Version) {
		return reject(ctrl, CodeUnsupportedVersion, fmt.Sprintf("agent speaks version %d, server %d", hello.Version, Version))
	}
	if !validAgentID(agentID) {
		return reject(ctrl, CodeProtocol, "agent id is not printable ASCII")
	}
	// Failures are limited per source address only. A per-id limit let
	// anyone who knew an agent's id, rotating addresses, lock the real
	// agent out; its secret is 256 random bits, so a correct proof must
	// succeed unless its own address is limited.
	ipKey := "ip:" + ip
	now := time.Now()
	if !s.limit.allow(ipKey, now) {
		return reject(ctrl, CodeRateLimited, "too many authentication failures from this address")
	}
	fail := func(code Code, reason string) *session {
		now := time.Now()
		s.limit.fail(ipKey, now)
		return reject(ctrl, code, reason)
	}
	if !s.nonces.use(hello.Nonce, now) {
		return fail(CodeReplay, "client nonce already used: replayed HELLO")
	}

	var ch challengeFrame
	if _, err := rand.Read(ch.Nonce[:]); err != nil {
		return reject(ctrl, CodeInternal, "random: "+err.Error())
	}
	if _, err := ctrl.Write(ch.Append(buf[:0])); err != nil {
		return reject(ctrl, CodeProtocol, "writing CHALLENGE: "+err.Error())
	}
	typ, p, err = readFrame(ctrl, buf)
	switch {
	case isTimeout(err):
		return reject(ctrl, CodeHandshakeTimeout, "no AUTH in time")
	case err != nil:
		return reject(ctrl, CodeProtocol, "reading AUTH: "+err.Error())
	case typ != FrameAuth:
		return reject(ctrl, CodeProtocol, unexpected(typ, FrameAuth).Error())
	}
	auth, _, err := parseAuth(p)
	if err != nil {
		return reject(ctrl, CodeProtocol, "AUTH: "+err.Error())
	}
	exporter, err := exporterValue(conn.tlsState())
	if err != nil {
		return reject(ctrl, CodeInternal, err.Error())
	}
	secret, _, ok := s.cfg.Auth.Lookup(agentID)
	if !ok {
		// Same wire answer as a wrong secret: the agent cannot tell which.
		return fail(CodeAuthFailed, "unknown agent")
	}
	want := proof(secret, hello.AgentID, &hello.Nonce, &ch.Nonce, exporter)
	if !hmac.Equal(want[:], auth.Proof[:]) {
		return fail(CodeAuthFailed, "wrong proof: wrong secret, or a proof replayed from another connection")
	}
	ok1 := okFrame{HeartbeatMillis: uint32(s.cfg.HeartbeatInterval / time.Millisecond)}
	if _, err := ctrl.Write(ok1.Append(buf[:0])); err != nil {
		return reject(ctrl, CodeProtocol, "writing OK: "+err.Error())
	}
	ctrl.SetDeadline(time.Time{})
	s.emit(Event{Kind: EventAuthenticated, AgentID: agentID, RemoteAddr: remote})
	sess := &session{srv: s, conn: conn, ctrl: ctrl, agentID: agentID, remote: remote, since: time.Now()}
	sess.touch()
	return sess
}

func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// register makes sess the agent's session, replacing an older one (GOAWAY
// CodeReplaced, then close). false if the server closed meanwhile.
func (s *Server) register(sess *session) bool {
	s.mu.Lock()
	if s.closed || s.draining.Load() {
		s.mu.Unlock()
		sess.closeConn(CodeShutdown, "server shutting down")
		return false
	}
	old := s.sessions[sess.agentID]
	s.sessions[sess.agentID] = sess
	s.mu.Unlock()
	if old != nil {
		old.goAway(CodeReplaced, "replaced by a new session from "+sess.remote)
		old.closeConn(CodeReplaced, "replaced by a new session")
		s.emit(Event{Kind: EventOffline, AgentID: old.agentID, RemoteAddr: old.remote, Code: CodeReplaced,
			Reason: "replaced by a new session from " + sess.remote})
	}
	s.emit(Event{Kind: EventOnline, AgentID: sess.agentID, RemoteAddr: sess.remote})
	return true
}

// endSession removes sess if it is still registered (emitting EventOffline
// once) and closes its connection.
func (s *Server) endSession(sess *session, code Code, reason string) {
	s.mu.Lock()
	registered := s.sessions[sess.agentID] == sess
	if registered {
		delete(s.sessions, sess.agentID)
	}
	s.mu.Unlock()
	sess.goAway(code, reason)
	sess.closeConn(code, reason)
	if registered {
		s.closeIdle(sess.agentID) // their streams died with the connection
		s.emit(Event{Kind: EventOffline, AgentID: sess.agentID, RemoteAddr: sess.remote, Code: code, Reason: reason})
	}
}

// session is one authenticated agent connection.
type session struct {
	srv      *Server
	conn     conn
	ctrl     stream
	agentID  string
	remote   string
	since    time.Time
	lastSeen atomic.Int64 // unix nanoseconds
	streams  atomic.Int64
	draining atomic.Bool // GOAWAY sent or received: no new streams

	wmu  sync.Mutex // guards writes on ctrl and wbuf
	wbuf [64]byte
}

func (ss *session) touch() { ss.lastSeen.Store(time.Now().UnixNano()) }

func (ss *session) lastSeenTime() time.Time { return time.Unix(0, ss.lastSeen.Load()) }

func (ss *session) info() SessionInfo {
	return SessionInfo{AgentID: ss.agentID, RemoteAddr: ss.remote, Transport: ss.conn.transport(), Since: ss.since,
		LastSeen: ss.lastSeenTime(), Streams: int(ss.streams.Load()), sess: ss}
}

// writeCtrl writes one frame on the control stream, bounded by a second so
// a stuck peer cannot hold wmu.
func (ss *session) writeCtrl(f frame) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := ss.ctrl.Write(f.Append(ss.wbuf[:0]))
	return err
}

func (ss *session) goAway(code Code, reason string) {
	ss.draining.Store(true)
	ss.writeCtrl(&goAwayFrame{Code: code, Reason: []byte(reason)})
}

// waitStreams waits until the session's streams handed out by Dial are
// closed, the connection ends, or max passes.
func (ss *session) waitStreams(max time.Duration) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(max)
	for ss.streams.Load() > 0 {
		select {
		case <-ss.conn.context().Done():
			return
		case <-deadline:
			return
		case <-t.C:
		}
	}
}

// closeIdleUntilDone closes the agent's idle HTTP keep-alive streams every
// 50 ms until the connection ends.
func (ss *session) closeIdleUntilDone() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ss.srv.closeIdle(ss.agentID)
		select {
		case <-ss.conn.context().Done():
			return
		case <-t.C:
		}
	}
}

func (ss *session) closeConn(code Code, reason string) {
	ss.conn.closeWithError(code, reason)
}

// run reads the control stream: PING refreshes last-seen and is answered
// with PONG; GOAWAY marks the session draining. Silence for longer than
// HeartbeatTimeout ends the session.
func (ss *session) run() {
	s := ss.srv
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	code, reason := CodeNone, "connection closed"
	for {
		ss.ctrl.SetReadDeadline(time.Now().Add(s.cfg.HeartbeatTimeout))
		typ, p, err := readFrame(ss.ctrl, buf)
		if err == io.EOF {
			// The agent finished its streams and waits for us to close the
			// connection once our ends of them are done too.
			ss.waitStreams(5 * time.Second)
			code, reason = CodeNone, "agent shut down"
			break
		}
		if err != nil {
			code, reason = sessionEndReason(err)
			break
		}
		switch typ {
		case FramePing:
			ping, _, err := parsePing(p)
			if err != nil {
				code, reason = CodeProtocol, "PING: "+err.Error()
				break
			}
			ss.touch()
			ss.writeCtrl(&pongFrame{Seq: ping.Seq})
			continue
		case FrameGoAway:
			ga, _, _ := parseGoAway(p)
			ss.touch()
			s.log.Info("agent draining", "agent", ss.agentID, "code", ga.Code.String(), "reason", string(ga.Reason))
			if !ss.draining.Swap(true) {
				// Idle keep-alive streams would hold the agent's drain open
				// until its timeout; close them as they become idle.
				s.wg.Add(1) // run is itself counted, so wg is not zero here
				go func() {
					defer s.wg.Done()
					ss.closeIdleUntilDone()
				}()
			}
			continue
		default:
			code, reason = CodeProtocol, unexpected(typ, FramePing).Error()
		}
		break
	}
	s.endSession(ss, code, reason)
}

// sessionEndReason turns a control-stream read error into an offline reason.
func sessionEndReason(err error) (Code, string) {
	var ae *quic.ApplicationError
	var ce *connClosedError
	switch {
	case errors.As(err, &ce):
		if ce.local {
			return ce.code, ce.reason
		}
		return CodeNone, "agent closed the connection: " + ce.cause.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return CodeHeartbeatTimeout, "no heartbeat within the timeout"
	case errors.As(err, &ae):
		if ae.Remote {
			return Code(ae.ErrorCode), "agent closed the connection: " + ae.ErrorMessage
		}
		return Code(ae.ErrorCode), ae.ErrorMessage
	}
	var it *quic.IdleTimeoutError
	if errors.As(err, &it) {
		return CodeHeartbeatTimeout, "QUIC idle timeout"
	}
	return CodeProtocol, err.Error()
}

var framePool = sync.Pool{New: func() any { return new(frameBuf) }}

func getFrameBuf() *frameBuf  { return framePool.Get().(*frameBuf) }
func putFrameBuf(b *frameBuf) { framePool.Put(b) }

// resetKey derives the QUIC stateless reset key from the certificate's
// private key, so a restarted server (same data dir, same key) can reset
// the connections its previous run left behind: an agent then notices at
// its next packet and reconnects at once, instead of waiting out its
// heartbeat timeout. Nil (resets off) when the key cannot be read.
func resetKey(cert tls.Certificate) *quic.StatelessResetKey {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil
	}
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte("webhookops-tunnel/1 stateless reset"))
	var k quic.StatelessResetKey
	copy(k[:], mac.Sum(nil))
	return &k
}
