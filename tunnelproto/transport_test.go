package tunnelproto

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

func TestParseTransport(t *testing.T) {
	for in, want := range map[string]Transport{"auto": TransportAuto, "": TransportAuto, "QUIC": TransportQUIC, " tcp ": TransportTCP} {
		got, err := ParseTransport(in)
		if err != nil || got != want {
			t.Errorf("ParseTransport(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "" && got.String() != want.String() {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	if _, err := ParseTransport("udp"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("ParseTransport(udp): %v", err)
	}
}

// yamuxFrame encodes one yamux frame.
func yamuxFrame(typ byte, flags uint16, id uint32, body []byte) []byte {
	h := make([]byte, yamuxHeaderLen, yamuxHeaderLen+len(body))
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], id)
	if typ == yamuxTypeData {
		binary.BigEndian.PutUint32(h[8:12], uint32(len(body)))
	} else {
		binary.BigEndian.PutUint32(h[8:12], 256<<10) // a window delta, no body
	}
	return append(h, body...)
}

// TestFrameScanner feeds a stream of frames in random pieces and checks the
// scanner is at a boundary exactly between frames.
func TestFrameScanner(t *testing.T) {
	var stream []byte
	boundaries := map[int]bool{0: true}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var f []byte
		switch i % 3 {
		case 0:
			f = yamuxFrame(yamuxTypeData, 0, uint32(i), bytes.Repeat([]byte{byte(i)}, rng.IntN(3000)+1))
		case 1:
			f = yamuxFrame(yamuxTypeWindowUpdate, 0, uint32(i), nil)
		case 2:
			f = yamuxFrame(yamuxTypeData, 0, uint32(i), nil) // an empty data frame has no body
		}
		stream = append(stream, f...)
		boundaries[len(stream)] = true
	}
	for range 20 {
		var f frameScanner
		for pos := 0; pos < len(stream); {
			n := min(rng.IntN(40)+1, len(stream)-pos)
			if u := f.untilBoundary(); u > 0 && boundaries[pos] {
				t.Fatalf("at %d: boundary, but scanner wants %d more bytes", pos, u)
			}
			f.feed(stream[pos : pos+n])
			pos += n
			if f.atBoundary() != boundaries[pos] {
				t.Fatalf("at %d: atBoundary %v, want %v", pos, f.atBoundary(), boundaries[pos])
			}
			if !f.atBoundary() && !boundaries[pos+f.untilBoundary()] && f.n == 0 {
				t.Fatalf("at %d: untilBoundary %d does not reach a boundary", pos, f.untilBoundary())
			}
		}
	}
}

// countingConn counts the writes that reach the TCP connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *countingConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// TestMuxConnOneWritePerFrame: a data frame's header and body reach the
// socket in one write, the header in the body's first TLS record.
func TestMuxConnOneWritePerFrame(t *testing.T) {
	cert, _ := testCerts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}))
		got <- b
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: raw}
	wire := &batchConn{Conn: cc}
	tc := tls.Client(wire, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	m := newMuxConn(cc, wire, tc, nil)
	frame := yamuxFrame(yamuxTypeData, 0, 1, []byte("hello through one record"))
	before := cc.writes.Load()
	m.Write(frame[:yamuxHeaderLen]) // as yamux does: header, then body
	m.Write(frame[yamuxHeaderLen:])
	if n := cc.writes.Load() - before; n != 1 {
		t.Fatalf("%d socket writes for one data frame, want 1", n)
	}
	// A frame without a body goes out at once.
	wu := yamuxFrame(yamuxTypeWindowUpdate, 0, 1, nil)
	m.Write(wu)
	if n := cc.writes.Load() - before; n != 2 {
		t.Fatalf("%d socket writes after a window update, want 2", n)
	}
	// A body of many records: the header rides in the first one, and all
	// of them leave in one write.
	big := yamuxFrame(yamuxTypeData, 0, 1, bytes.Repeat([]byte("x"), 200<<10))
	m.Write(big[:yamuxHeaderLen])
	m.Write(big[yamuxHeaderLen:])
	if n := cc.writes.Load() - before; n != 3 {
		t.Fatalf("%d socket writes after a 200 KiB frame, want 3", n)
	}
	m.Close()
	want := append(append(append([]byte{}, frame...), wu...), big...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, want the %d written in order", len(b), len(want))
	}
}

// tcpPair connects a client and a server tcpConn over loopback.
func tcpPair(t *testing.T) (client, server *tcpConn) {
	t.Helper()
	cert, _ := testCerts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	scfg := ServerConfig{TLSCert: cert, Logger: quietLogger()}.withDefaults()
	sc := make(chan *tcpConn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			sc <- nil
			return
		}
		c := newServerTCPConn(nc, scfg)
		if err := c.handshake(5 * time.Second); err != nil {
			c.closeWithError(CodeNone, "")
			sc <- nil
			return
		}
		sc <- c
	}()
	ccfg := ClientConfig{Addr: ln.Addr().String(), ServerFingerprint: Fingerprint(cert), Logger: quietLogger()}.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialTCP(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	server = <-sc
	if server == nil {
		t.Fatal("server side of the pair failed")
	}
	client = c.(*tcpConn)
	t.Cleanup(func() {
		client.closeWithError(CodeNone, "")
		server.closeWithError(CodeNone, "")
	})
	return client, server
}

// streamPair opens a stream from a and accepts it on b.
func streamPair(t *testing.T, a, b *tcpConn) (stream, stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := a.openStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Write([]byte("open")); err != nil {
		t.Fatal(err)
	}
	sb, err := b.acceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf [4]byte
	if _, err := io.ReadFull(sb, buf[:]); err != nil {
		t.Fatal(err)
	}
	return sa, sb
}

// writeUntilError writes to st until a write fails, and sends that error.
func writeUntilError(st stream) <-chan error {
	errc := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := st.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

func waitNoStreams(t *testing.T, cs ...*tcpConn) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n := 0
		for _, c := range cs {
			sess, _ := c.session()
			n += sess.NumStreams()
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still registered", n)
		}
	}
}

// TestStreamAbortOverTCP: abort resets a stream on both ends at once, in the
// middle of a transfer, and both sessions forget it.
func TestStreamAbortOverTCP(t *testing.T) {
	client, server := tcpPair(t)
	for _, aborter := range []string{"opener", "acceptor"} {
		t.Run(aborter, func(t *testing.T) {
			sa, sb := streamPair(t, server, client)
			local, peer := sa, sb
			if aborter == "acceptor" {
				local, peer = sb, sa
			}
			// The peer is busy writing a large transfer and blocked in Read.
			writeErr := writeUntilError(peer)
			readErr := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, peer)
				readErr <- err
			}()
			time.Sleep(20 * time.Millisecond)
			local.abort()
			for name, ch := range map[string]<-chan error{"write": writeErr, "read": readErr} {
				select {
				case err := <-ch:
					if !errors.Is(err, yamux.ErrConnectionReset) {
						t.Fatalf("peer %s ended with %v, want a reset", name, err)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("peer %s still running after the reset", name)
				}
			}
			if _, err := local.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
				t.Fatalf("local read after abort: %v", err)
			}
			waitNoStreams(t, client, server)
		})
	}
	// The session itself is unharmed.
	sa, sb := streamPair(t, client, server)
	sa.Close()
	sb.Close()
}

// TestStreamCloseGraceOverTCP: a stream closed by one end (Close after
// stopReading) while the peer keeps writing is reset after closeGrace, as
// QUIC's STOP_SENDING would stop the writer; one whose peer finishes in
// time closes cleanly, with every byte written before Close delivered.
func TestStreamCloseGraceOverTCP(t *testing.T) {
	old := closeGrace
	closeGrace = 200 * time.Millisecond
	t.Cleanup(func() { closeGrace = old })
	client, server := tcpPair(t)

	t.Run("peer keeps writing", func(t *testing.T) {
		sa, sb := streamPair(t, server, client)
		writeErr := writeUntilError(sb)
		sc := newStreamConn(sa, server, nil)
		sc.Close()
		select {
		case err := <-writeErr:
			if !errors.Is(err, yamux.ErrConnectionReset) {
				t.Fatalf("writer ended with %v, want a reset", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("writer still blocked after the close grace")
		}
		waitNoStreams(t, client, server)
	})
	t.Run("peer finishes", func(t *testing.T) {
		sa, sb := streamPair(t, server, client)
		sc := newStreamConn(sa, server, nil)
		msg := bytes.Repeat([]byte("last words "), 1000)
		if _, err := sc.Write(msg); err != nil {
			t.Fatal(err)
		}
		sc.Close()
		time.Sleep(closeGrace / 2) // the peer is slow to read, but in time
		got, err := io.ReadAll(sb)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("peer read %d bytes, %v; want the %d written before Close", len(got), err, len(msg))
		}
		sb.Close()
		waitNoStreams(t, client, server)
	})
}

// TestStreamLimitOverTCP: a server keeps at most maxTCPStreams data streams
// open on a TCP session; the next open waits for one to be closed (or for
// its context), as QUIC's stream limit makes it wait.
func TestStreamLimitOverTCP(t *testing.T) {
	old := maxTCPStreams
	maxTCPStreams = 3
	t.Cleanup(func() { maxTCPStreams = old })
	client, server := tcpPair(t)
	var open []stream
	for range 3 {
		sa, _ := streamPair(t, server, client)
		open = append(open, sa)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := server.openStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fourth open: %v, want it to wait until its context ends", err)
	}
	newStreamConn(open[0], server, nil).Close() // frees a slot
	open[1].abort()                             // and so does a reset
	streamPair(t, server, client)
	streamPair(t, server, client)
}

// TestExtraAgentStreamsRefusedOverTCP: over TCP nothing stops an agent from
// opening more streams than the control stream; the server resets them.
func TestExtraAgentStreamsRefusedOverTCP(t *testing.T) {
	auth := newMemAuth()
	auth.set("agent-1", "s3cret")
	s := startServerOver(t, TransportTCP, auth, nil)
	r := dialRaw(t, s)
	var nonce [nonceLen]byte
	nonce[0] = 42
	if typ, code := r.authenticate(t, "agent-1", "s3cret", nonce); typ != FrameOK {
		t.Fatalf("handshake: %s %s", typ, code)
	}
	waitOnline(t, s, "agent-1")
	extra, err := r.conn.openStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	extra.SetDeadline(time.Now().Add(5 * time.Second))
	extra.Write([]byte("let me in"))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("extra stream: %v, want a reset", err)
	}
	if ok, _ := s.Online("agent-1"); !ok {
		t.Fatal("the session did not survive the refused stream")
	}
}

// TestAutoFallsBackToTCP: an agent whose UDP goes nowhere (the server has
// no QUIC listener) joins over TCP with TransportAuto and delivers both an
// HTTP request and a raw TCP forward; a wrong pin and a wrong secret are
// still refused.
func TestAutoFallsBackToTCP(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.URL.Path, b)
	}))
	defer app.Close()
	echo := echoServer(t)
	auth := newMemAuth()
	auth.set("agent-1", "s3cret", app.Listener.Addr().String(), echo)
	s := startServerOver(t, TransportAuto, auth, func(c *ServerConfig) { c.DisableQUIC = true })
	cfg := s.clientConfig("agent-1", "s3cret")
	cfg.FallbackDelay = 300 * time.Millisecond

	t.Run("wrong pin", func(t *testing.T) {
		bad := cfg
		_, alt := testCerts(t)
		bad.ServerFingerprint = Fingerprint(alt)
		if _, err := Dial(context.Background(), bad); !errors.Is(err, ErrPinMismatch) {
			t.Fatalf("err = %v, want ErrPinMismatch", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := cfg
		bad.Secret = []byte("guess")
		if _, err := Dial(context.Background(), bad); !isCode(err, CodeAuthFailed) {
			t.Fatalf("err = %v, want %s", err, CodeAuthFailed)
		}
	})

	a := startAgent(t, cfg, dialHandler([]string{app.Listener.Addr().String(), echo}))
	waitOnline(t, s, "agent-1")
	if got := a.client.Transport(); got != TransportTCP {
		t.Fatalf("agent joined over %v, want tcp", got)
	}
	if got := s.Sessions()[0].Transport; got != TransportTCP {
		t.Fatalf("server sees %v, want tcp", got)
	}

	ht := s.Transport("agent-1")
	defer ht.CloseIdleConnections()
	resp, err := (&http.Client{Transport: ht, Timeout: 5 * time.Second}).Post(app.URL+"/hooks", "text/plain", bytes.NewBufferString("evt_1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "/hooks evt_1" {
		t.Fatalf("HTTP through the agent: %q", body)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var fwd sync.WaitGroup
	fwd.Go(func() { s.Forward(ctx, ln, "agent-1", echo) })
	defer func() { cancel(); fwd.Wait() }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("forwarded "), 50_000)
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("forward echoed %d bytes (%v), sent %d", len(got), err, len(msg))
	}
}

// TestAutoPrefersQUIC: with both listeners up, auto takes QUIC.
func TestAutoPrefersQUIC(t *testing.T) {
	auth := newMemAuth()
	auth.set("agent-1", "s3cret")
	s := startServerOver(t, TransportAuto, auth, nil)
	if s.TCPAddr() == nil || s.TCPAddr().(*net.TCPAddr).Port != s.Addr().(*net.UDPAddr).Port {
		t.Fatalf("TCP listener %v is not on the QUIC port %v", s.TCPAddr(), s.Addr())
	}
	a := startAgent(t, s.clientConfig("agent-1", "s3cret"), dialHandler(nil))
	waitOnline(t, s, "agent-1")
	if got := a.client.Transport(); got != TransportQUIC {
		t.Fatalf("auto joined over %v, want quic", got)
	}
}
