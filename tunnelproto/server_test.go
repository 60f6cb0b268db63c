package tunnelproto

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAuthAccepted(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		auth := newMemAuth()
		auth.set("agent-1", "s3cret")
		s := startServerOver(t, tr, auth, nil)
		startAgent(t, s.clientConfig("agent-1", "s3cret"), dialHandler(nil))
		waitOnline(t, s, "agent-1")
		s.events.wait(t, kind(EventAuthenticated, "agent-1"))
		ev := s.events.wait(t, kind(EventOnline, "agent-1"))
		if ev.RemoteAddr == "" || ev.Time.IsZero() {
			t.Fatalf("event lacks address or time: %+v", ev)
		}
		infos := s.Sessions()
		if len(infos) != 1 || infos[0].AgentID != "agent-1" || infos[0].Transport != tr {
			t.Fatalf("Sessions() = %+v", infos)
		}
	})
}

func TestAuthRefused(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		cases := []struct {
			name, id, secret string
			wantReason       string
		}{
			{"wrong secret", "agent-1", "not-the-secret", "wrong proof"},
			{"unknown agent", "agent-x", "s3cret", "unknown agent"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				auth := newMemAuth()
				auth.set("agent-1", "s3cret")
				s := startServerOver(t, tr, auth, nil)
				_, err := Dial(context.Background(), s.clientConfig(c.id, c.secret))
				if !errors.Is(err, ErrRefused) || !isCode(err, CodeAuthFailed) {
					t.Fatalf("Dial error = %v, want refused with %s", err, CodeAuthFailed)
				}
				ev := s.events.wait(t, kind(EventRejected, c.id))
				if ev.Code != CodeAuthFailed || !contains(ev.Reason, c.wantReason) {
					t.Fatalf("event = %+v, want code %s and reason %q", ev, CodeAuthFailed, c.wantReason)
				}
				if ok, _ := s.Online(c.id); ok {
					t.Fatal("refused agent is online")
				}
			})
		}
	})
}

// rawConn is a hand-driven agent connection for tests that must misbehave.
type rawConn struct {
	conn conn
	ctrl stream
	buf  frameBuf
}

// dialRaw connects over the server's test transport (pinned, with no
// handshake yet) and opens the control stream.
func dialRaw(t *testing.T, s *testServer) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg := s.clientConfig("raw", "raw").withDefaults()
	dial := dialQUIC
	if s.tr == TransportTCP {
		dial = dialTCP
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := conn.openStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctrl.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { conn.closeWithError(0, "") })
	return &rawConn{conn: conn, ctrl: ctrl}
}

func (r *rawConn) write(t *testing.T, f frame) {
	t.Helper()
	// A write can fail because the server refused and closed meanwhile
	// (over yamux even one that went out): the next read tells.
	if _, err := r.ctrl.Write(f.Append(nil)); err != nil {
		t.Logf("write %T: %v", f, err)
	}
}

// read returns the next frame, or the refusal code from CONNECTION_CLOSE.
func (r *rawConn) read(t *testing.T) (FrameType, []byte, Code) {
	t.Helper()
	typ, p, err := readFrame(r.ctrl, &r.buf)
	if err != nil {
		var re *RefusedError
		if errors.As(refusal(err), &re) {
			return FrameError, nil, re.Code
		}
		t.Fatalf("read: %v", err)
	}
	if typ == FrameError {
		ef, _, _ := parseError(p)
		return typ, p, ef.Code
	}
	return typ, p, 0
}

func (r *rawConn) exporter(t *testing.T) []byte {
	v, err := exporterValue(r.conn.tlsState())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// handshakeRaw sends HELLO with nonce, then AUTH with mkProof's result,
// and returns the final frame type and code.
func (r *rawConn) handshake(t *testing.T, id string, nonce [nonceLen]byte, mkProof func(serverNonce [nonceLen]byte) [proofLen]byte) (FrameType, Code) {
	t.Helper()
	r.write(t, &helloFrame{Version: uint16(Version), Nonce: nonce, AgentID: []byte(id)})
	typ, p, code := r.read(t)
	if typ != FrameChallenge {
		return typ, code
	}
	ch, _, _ := parseChallenge(p)
	r.write(t, &authFrame{Proof: mkProof(ch.Nonce)})
	typ, _, code = r.read(t)
	return typ, code
}

// authenticate runs the handshake with the right proof for secret.
func (r *rawConn) authenticate(t *testing.T, id, secret string, nonce [nonceLen]byte) (FrameType, Code) {
	t.Helper()
	exp := r.exporter(t)
	return r.handshake(t, id, nonce, func(sn [nonceLen]byte) [proofLen]byte {
		return proof([]byte(secret), []byte(id), &nonce, &sn, exp)
	})
}

// TestReplayedProof captures a valid AUTH proof on one connection and
// replays it on another: refused, whether the HELLO reuses the client nonce
// (caught at once) or brings a fresh one (the proof no longer verifies,
// because the server nonce and the TLS exporter differ).
func TestReplayedProof(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		auth := newMemAuth()
		auth.set("agent-1", "s3cret")
		s := startServerOver(t, tr, auth, nil)

		c1 := dialRaw(t, s)
		var nonce1 [nonceLen]byte
		nonce1[0] = 1
		var captured [proofLen]byte
		exp1 := c1.exporter(t)
		typ, code := c1.handshake(t, "agent-1", nonce1, func(sn [nonceLen]byte) [proofLen]byte {
			captured = proof([]byte("s3cret"), []byte("agent-1"), &nonce1, &sn, exp1)
			return captured
		})
		if typ != FrameOK {
			t.Fatalf("legitimate handshake: got %s code %s", typ, code)
		}
		s.events.wait(t, kind(EventOnline, "agent-1"))

		t.Run("same client nonce", func(t *testing.T) {
			c2 := dialRaw(t, s)
			typ, code := c2.handshake(t, "agent-1", nonce1, func([nonceLen]byte) [proofLen]byte { return captured })
			if typ != FrameError || code != CodeReplay {
				t.Fatalf("got %s code %s, want ERROR %s", typ, code, CodeReplay)
			}
			ev := s.events.wait(t, kind(EventRejected, "agent-1"))
			if ev.Code != CodeReplay {
				t.Fatalf("event %+v", ev)
			}
		})
		t.Run("fresh client nonce", func(t *testing.T) {
			c3 := dialRaw(t, s)
			if bytes.Equal(c3.exporter(t), exp1) {
				t.Fatal("two connections share a TLS exporter value")
			}
			var nonce3 [nonceLen]byte
			nonce3[0] = 3
			typ, code := c3.handshake(t, "agent-1", nonce3, func([nonceLen]byte) [proofLen]byte { return captured })
			if typ != FrameError || code != CodeAuthFailed {
				t.Fatalf("got %s code %s, want ERROR %s", typ, code, CodeAuthFailed)
			}
			s.events.wait(t, func(e Event) bool {
				return e.Kind == EventRejected && e.Code == CodeAuthFailed && contains(e.Reason, "replayed")
			})
		})
		// The legitimate session is untouched by the replays.
		if ok, _ := s.Online("agent-1"); !ok {
			t.Fatal("legitimate session went offline")
		}
	})
}

func TestPinMismatch(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		auth := newMemAuth()
		auth.set("agent-1", "s3cret")
		s := startServerOver(t, tr, auth, nil)
		_, alt := testCerts(t)
		cfg := s.clientConfig("agent-1", "s3cret")
		cfg.ServerFingerprint = Fingerprint(alt)
		_, err := Dial(context.Background(), cfg)
		if !errors.Is(err, ErrPinMismatch) {
			t.Fatalf("err = %v, want ErrPinMismatch", err)
		}
		if !contains(err.Error(), s.fp) {
			t.Fatalf("error %q does not name the fingerprint the server presented", err)
		}
		if ok, _ := s.Online("agent-1"); ok || s.events.count(kind(EventAuthenticated, "agent-1")) != 0 {
			t.Fatal("agent authenticated to a server it does not trust")
		}
	})
}

func TestRateLimit(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		auth := newMemAuth()
		auth.set("agent-1", "s3cret")
		auth.set("agent-2", "other")
		s := startServerOver(t, tr, auth, func(c *ServerConfig) {
			c.AuthFailureBurst = 2
			c.AuthFailureRefill = time.Hour
		})
		for i := 0; i < 2; i++ {
			_, err := Dial(context.Background(), s.clientConfig("agent-1", "wrong"))
			if !isCode(err, CodeAuthFailed) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		// The address's bucket is empty: even the right secret is refused
		// from it…
		_, err := Dial(context.Background(), s.clientConfig("agent-1", "s3cret"))
		if !isCode(err, CodeRateLimited) {
			t.Fatalf("err = %v, want %s", err, CodeRateLimited)
		}
		s.events.wait(t, func(e Event) bool { return e.Kind == EventRejected && e.Code == CodeRateLimited })
		// …and for any id from this address.
		_, err = Dial(context.Background(), s.clientConfig("agent-2", "other"))
		if !isCode(err, CodeRateLimited) {
			t.Fatalf("other id from the same address: err = %v, want %s", err, CodeRateLimited)
		}
	})
}

func TestHTTPThroughAgent(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
		}))
		defer app.Close()
		target := app.Listener.Addr().String()

		s := serverWithAgent(t, tr, target)

		ht := s.Transport("agent-1")
		defer ht.CloseIdleConnections()
		hc := &http.Client{Transport: ht, Timeout: 5 * time.Second}
		for i := 0; i < 3; i++ { // the later ones reuse the kept-alive stream
			resp, err := hc.Post(app.URL+"/hooks", "text/plain", bytes.NewBufferString(fmt.Sprintf("event-%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("POST /hooks event-%d", i); string(body) != want {
				t.Fatalf("body = %q, want %q", body, want)
			}
		}
	})
}

// TestTCPForwardBulk sends 100 MB through Forward with half-close and
// compares SHA-256 at both ends.
func TestTCPForwardBulk(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		const size = 100 << 20
		// The target hashes what it receives until EOF, then answers the hash.
		sink, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var sinkWG sync.WaitGroup
		sinkWG.Add(1)
		go func() {
			defer sinkWG.Done()
			c, err := sink.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			h := sha256.New()
			n, _ := io.Copy(h, c)
			fmt.Fprintf(c, "%d %x", n, h.Sum(nil))
		}()
		defer func() { sink.Close(); sinkWG.Wait() }()
		target := sink.Addr().String()

		s := serverWithAgent(t, tr, target)

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		fwdDone := make(chan error, 1)
		go func() { fwdDone <- s.Forward(ctx, ln, "agent-1", target) }()
		defer func() {
			cancel()
			if err := <-fwdDone; err != nil {
				t.Errorf("Forward: %v", err)
			}
		}()

		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		// 100 blocks of 1 MiB of random bytes, each stamped with its index so a
		// lost, repeated or reordered block changes the hash.
		block := make([]byte, 1<<20)
		rand.NewChaCha8([32]byte{7}).Read(block)
		h := sha256.New()
		for i := range size / len(block) {
			binary.BigEndian.PutUint64(block, uint64(i))
			h.Write(block)
			if _, err := c.Write(block); err != nil {
				t.Fatal(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%d %s", size, hex.EncodeToString(h.Sum(nil)))
		if string(got) != want {
			t.Fatalf("target received %q, sent %q", got, want)
		}
		t.Logf("%d MB in %v (%.0f MB/s)", size>>20, time.Since(start).Round(time.Millisecond), float64(size)/1e6/time.Since(start).Seconds())
	})
}

func TestConcurrentStreams(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		const n = 200
		target := echoServer(t)
		s := serverWithAgent(t, tr, target)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var (
			wg      sync.WaitGroup
			opened  sync.WaitGroup // all n streams are open at the same time
			maxOpen atomic.Int64
			errs    = make(chan error, n)
		)
		opened.Add(n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.Dial(ctx, "agent-1", KindTCP, target)
				opened.Done()
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				opened.Wait()
				if v := int64(s.Sessions()[0].Streams); v > maxOpen.Load() {
					maxOpen.Store(v)
				}
				msg := bytes.Repeat([]byte{byte(i)}, 16<<10+i)
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				c.(interface{ CloseWrite() error }).CloseWrite()
				got, err := io.ReadAll(c)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("stream %d: echoed %d bytes, sent %d", i, len(got), len(msg))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if maxOpen.Load() != n {
			t.Errorf("at most %d streams were open at once, want %d", maxOpen.Load(), n)
		}
	})
}

func TestTargetNotAllowed(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		target := echoServer(t)
		other := "127.0.0.1:1"
		auth := newMemAuth()
		// The server allows both; the agent only target.
		auth.set("agent-1", "s3cret", target, other)
		s := startServerOver(t, tr, auth, nil)
		var handled atomic.Int64
		h := dialHandler([]string{target})
		startAgent(t, s.clientConfig("agent-1", "s3cret"), func(ctx context.Context, r *Request) {
			handled.Add(1)
			h(ctx, r)
		})
		waitOnline(t, s, "agent-1")
		ctx := context.Background()

		t.Run("server side", func(t *testing.T) {
			before := handled.Load()
			_, err := s.Dial(ctx, "agent-1", KindTCP, "127.0.0.1:2")
			if !errors.Is(err, ErrTargetNotAllowed) || !contains(err.Error(), "(server)") {
				t.Fatalf("err = %v, want ErrTargetNotAllowed from the server", err)
			}
			if handled.Load() != before {
				t.Fatal("the server opened a stream for a target it does not allow")
			}
		})
		t.Run("agent side", func(t *testing.T) {
			_, err := s.Dial(ctx, "agent-1", KindTCP, other)
			if !errors.Is(err, ErrTargetNotAllowed) || !contains(err.Error(), "(agent)") {
				t.Fatalf("err = %v, want ErrTargetNotAllowed from the agent", err)
			}
		})
		t.Run("offline", func(t *testing.T) {
			auth.set("agent-2", "x", target)
			_, err := s.Dial(ctx, "agent-2", KindTCP, target)
			if !errors.Is(err, ErrAgentOffline) {
				t.Fatalf("err = %v, want ErrAgentOffline", err)
			}
		})
	})
}

func TestDialFailed(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		s := serverWithAgent(t, tr, dead)
		_, err := s.Dial(context.Background(), "agent-1", KindTCP, dead)
		if !errors.Is(err, ErrDialFailed) || !contains(err.Error(), "refused") {
			t.Fatalf("err = %v, want ErrDialFailed with the agent's reason", err)
		}
	})
}

func TestSessionReplacement(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		target := echoServer(t)
		auth := newMemAuth()
		auth.set("agent-1", "s3cret", target)
		s := startServerOver(t, tr, auth, nil)
		cfg := s.clientConfig("agent-1", "s3cret")
		first := startAgent(t, cfg, dialHandler([]string{target}))
		waitOnline(t, s, "agent-1")
		for i := range 5 {
			next := startAgent(t, cfg, dialHandler([]string{target}))
			select {
			case err := <-first.done:
				close(first.done)
				if !errors.Is(err, ErrGoAway) || !isCode(err, CodeReplaced) {
					t.Fatalf("round %d: old session ended with %v, want GOAWAY %s", i, err, CodeReplaced)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: old session still running", i)
			}
			first = next
		}
		waitOnline(t, s, "agent-1")
		if n := len(s.Sessions()); n != 1 {
			t.Fatalf("%d sessions, want 1", n)
		}
		// The surviving session works.
		c, err := s.Dial(context.Background(), "agent-1", KindTCP, target)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		replaced := func(e Event) bool { return e.Kind == EventOffline && e.Code == CodeReplaced }
		for deadline := time.Now().Add(5 * time.Second); s.events.count(replaced) < 5 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := s.events.count(replaced); n != 5 {
			t.Fatalf("%d replaced events, want 5", n)
		}
		// goleak in TestMain checks that the replaced sessions left nothing behind.
	})
}

func TestDisconnectWithinASecond(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		target := echoServer(t)
		auth := newMemAuth()
		auth.set("agent-1", "s3cret", target)
		s := startServerOver(t, tr, auth, nil)
		a := startAgent(t, s.clientConfig("agent-1", "s3cret"), dialHandler([]string{target}))
		waitOnline(t, s, "agent-1")
		// A live stream in the middle of a transfer.
		c, err := s.Dial(context.Background(), "agent-1", KindTCP, target)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		readErr := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			readErr <- err
		}()

		start := time.Now()
		if !s.Disconnect("agent-1") {
			t.Fatal("Disconnect found no session")
		}
		if ok, _ := s.Online("agent-1"); ok {
			t.Fatal("still online after Disconnect")
		}
		select {
		case err := <-a.done:
			close(a.done)
			if !isCode(err, CodeRevoked) {
				t.Fatalf("agent saw %v, want %s", err, CodeRevoked)
			}
		case <-time.After(time.Second):
			t.Fatal("agent session still alive a second after Disconnect")
		}
		select {
		case <-readErr:
		case <-time.After(time.Second - time.Since(start)):
			t.Fatal("live stream still open a second after Disconnect")
		}
		s.events.wait(t, func(e Event) bool { return e.Kind == EventOffline && e.Code == CodeRevoked })
	})
}

func TestHeartbeat(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		auth := newMemAuth()
		auth.set("agent-1", "s3cret")
		s := startServerOver(t, tr, auth, func(c *ServerConfig) {
			c.HeartbeatInterval = 100 * time.Millisecond
			c.HeartbeatTimeout = time.Second
		})
		startAgent(t, s.clientConfig("agent-1", "s3cret"), dialHandler(nil))
		waitOnline(t, s, "agent-1")
		_, first := s.Online("agent-1")
		time.Sleep(200 * time.Millisecond)
		ok, later := s.Online("agent-1")
		if !ok || !later.After(first) {
			t.Fatalf("last seen did not advance: %v → %v (online %v)", first, later, ok)
		}

		// A session that authenticates and then goes silent is dropped.
		auth.set("silent", "s3cret")
		r := dialRaw(t, s)
		var nonce [nonceLen]byte
		nonce[0] = 9
		typ, _ := r.authenticate(t, "silent", "s3cret", nonce)
		if typ != FrameOK {
			t.Fatalf("handshake: %s", typ)
		}
		ev := s.events.wait(t, kind(EventOffline, "silent"))
		if ev.Code != CodeHeartbeatTimeout {
			t.Fatalf("offline event %+v, want %s", ev, CodeHeartbeatTimeout)
		}
	})
}

func TestServerClose(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		auth := newMemAuth()
		auth.set("agent-1", "s3cret")
		s := startServerOver(t, tr, auth, nil)
		a := startAgent(t, s.clientConfig("agent-1", "s3cret"), dialHandler(nil))
		waitOnline(t, s, "agent-1")
		s.Close()
		s.Close() // idempotent
		select {
		case err := <-a.done:
			close(a.done)
			if !isCode(err, CodeShutdown) {
				t.Fatalf("agent saw %v, want %s", err, CodeShutdown)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("agent did not notice the server closing")
		}
		if _, err := s.Dial(context.Background(), "agent-1", KindTCP, "127.0.0.1:1"); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Dial after Close: %v", err)
		}
	})
}

func TestLoadOrCreateCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c1, fp1, err := LoadOrCreateCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fp1) != len("sha256:")+64 || fp1 != Fingerprint(c1) {
		t.Fatalf("fingerprint %q", fp1)
	}
	for _, name := range []string{CertFileName, KeyFileName} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	_, fp2, err := LoadOrCreateCertificate(dir)
	if err != nil || fp2 != fp1 {
		t.Fatalf("second start: %q, %v; want the same identity %q", fp2, err, fp1)
	}
	if _, err := ParseFingerprint(fp1); err != nil {
		t.Fatal(err)
	}
	upper := "sha256:" + string(bytes.ToUpper([]byte(fp1[7:])))
	if p1, _ := ParseFingerprint(fp1); true {
		if p2, err := ParseFingerprint(upper); err != nil || p1 != p2 {
			t.Fatalf("upper-case fingerprint: %v", err)
		}
	}
	os.Remove(filepath.Join(dir, CertFileName))
	if _, _, err := LoadOrCreateCertificate(dir); err == nil {
		t.Fatal("a key without its certificate was silently replaced")
	}
}

func TestShutdownDrains(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		target := echoServer(t)
		s := serverWithAgent(t, tr, target)
		c, err := s.Dial(context.Background(), "agent-1", KindTCP, target)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(context.Background()) }()
		// Draining: no new streams, the open one still works.
		deadline := time.Now().Add(2 * time.Second)
		for {
			extra, err := s.Dial(context.Background(), "agent-1", KindTCP, target)
			if errors.Is(err, ErrAgentOffline) {
				break
			}
			if err == nil {
				extra.Close() // opened before the drain began
			}
			if time.Now().After(deadline) {
				t.Fatalf("Dial during drain: %v, want ErrAgentOffline", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := c.Write([]byte("still here")); err != nil {
			t.Fatal(err)
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "still here" {
			t.Fatalf("in-flight stream during drain: %q, %v", got, err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v before the stream was closed", err)
		case <-time.After(50 * time.Millisecond):
		}
		c.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Shutdown did not return after the last stream closed")
		}
	})
}

// TestShutdownClosesIdleKeepAlive: an idle keep-alive stream of the
// server's own Transport must not hold a drain open until its deadline.
func TestShutdownClosesIdleKeepAlive(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		defer app.Close()
		target := app.Listener.Addr().String()
		s := serverWithAgent(t, tr, target)
		resp, err := (&http.Client{Transport: s.Transport("agent-1")}).Get(app.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v after %v", err, time.Since(start))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Shutdown took %v", d)
		}
	})
}

// TestRotatingAddressesCannotLockOutAnAgent: a client that knows an
// agent's id and rotates its source address (127.0.0.2-9) hammering wrong
// proofs exhausts its own addresses' buckets, and the real agent, from
// 127.0.0.1 with the right secret, still joins (a per-id limit used to
// refuse it).
func TestRotatingAddressesCannotLockOutAnAgent(t *testing.T) {
	auth := newMemAuth()
	auth.set("agent-1", "s3cret")
	s := startServerOver(t, TransportTCP, auth, func(c *ServerConfig) {
		c.AuthFailureBurst = 2
		c.AuthFailureRefill = time.Hour
	})
	for i := 2; i <= 9; i++ {
		for range 3 {
			cfg := s.clientConfig("agent-1", "wrong")
			cfg.localAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))}
			if _, err := Dial(context.Background(), cfg); !isCode(err, CodeAuthFailed) && !isCode(err, CodeRateLimited) {
				t.Fatalf("attacker from 127.0.0.%d: %v", i, err)
			}
		}
	}
	cfg := s.clientConfig("agent-1", "s3cret")
	cfg.localAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("the real agent was locked out: %v", err)
	}
	c.Close()
}

// TestUnauthenticatedConnectionCaps: connections that never authenticate
// are capped per source address and in total; past a cap a new one is
// closed at once, and the real agent from its own address still joins.
func TestUnauthenticatedConnectionCaps(t *testing.T) {
	auth := newMemAuth()
	auth.set("agent-1", "s3cret")
	s := startServerOver(t, TransportTCP, auth, func(c *ServerConfig) {
		c.MaxPendingPerAddr = 2
		c.MaxPending = 3
	})
	addr := s.clientConfig("agent-1", "s3cret").Addr
	idle := func(ip byte) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedSoon reports whether the server closed c (EOF) rather than
	// keeping it waiting for its handshake.
	closedSoon := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	a1, a2 := idle(2), idle(2)
	if !closedSoon(idle(2)) {
		t.Fatal("a third unauthenticated connection from one address was kept")
	}
	cfg := s.clientConfig("agent-1", "s3cret")
	cfg.localAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("the real agent, from its own address: %v", err)
	}
	c.Close()
	// The server lets go of the agent's handshake slot just after it sends
	// the answer Dial returned on: wait for that before counting to 3.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		n := len(s.pending)
		s.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d unauthenticated connections after the agent authenticated, want 2", n)
		}
	}
	b1 := idle(3) // the total is now 3
	if !closedSoon(idle(4)) {
		t.Fatal("a connection past the total cap was kept")
	}
	for _, c := range []net.Conn{a1, a2, b1} {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection within the caps was closed: %v", err)
		}
	}
}

// TestServerConfigValidate: a config a server cannot run with is refused
// with ErrInvalidConfig naming the field (a negative cap on unauthenticated
// connections would refuse every agent).
func TestServerConfigValidate(t *testing.T) {
	cert, _ := testCerts(t)
	good := ServerConfig{Addr: "127.0.0.1:0", TLSCert: cert, Auth: newMemAuth()}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		field string
		bad   func(*ServerConfig)
	}{
		{"Addr", func(c *ServerConfig) { c.Addr = "" }},
		{"Auth", func(c *ServerConfig) { c.Auth = nil }},
		{"MaxPending", func(c *ServerConfig) { c.MaxPending = -1 }},
		{"MaxPendingPerAddr", func(c *ServerConfig) { c.MaxPendingPerAddr = -1 }},
		{"AuthFailureBurst", func(c *ServerConfig) { c.AuthFailureBurst = -1 }},
	} {
		c := good
		tc.bad(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want ErrInvalidConfig naming it", tc.field, err)
		}
	}
}

// TestRejectionsAreNotLoggedOneByOne: anyone who reaches the tunnel can
// fail its handshake as fast as the server answers, so a log line per
// rejection would let them make the node write without bound (issue 9
// item 2). Rejections go to OnEvent (the gateway tallies them into the
// audit log) and to the log at debug level only.
func TestRejectionsAreNotLoggedOneByOne(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	auth := newMemAuth()
	auth.set("agent-1", "s3cret")
	s := startServerOver(t, TransportTCP, auth, func(c *ServerConfig) {
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	const n = 12 // past the failure burst: the last ones are refused as rate limited
	for range n {
		if _, err := Dial(context.Background(), s.clientConfig("agent-1", "wrong")); !errors.Is(err, ErrRefused) {
			t.Fatalf("Dial with a wrong secret: %v", err)
		}
	}
	rejected := 0
	s.events.wait(t, func(e Event) bool { // called on each event, under the events' lock
		if e.Kind == EventRejected {
			rejected++
		}
		return rejected == n
	})
	mu.Lock()
	defer mu.Unlock()
	if logged.Len() != 0 {
		t.Fatalf("%d refused handshakes logged at info or above:\n%s", n, logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
