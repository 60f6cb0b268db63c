package tunnelproto

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// benchRounds: the paths are measured alternately in this many rounds, so
// load from elsewhere on the machine falls on both alike and the ratio
// stays readable.
const benchRounds = 8

func rounds(n int) []int {
	r := min(n, benchRounds)
	out := make([]int, r)
	for i := range out {
		out[i] = n / r
	}
	out[r-1] += n % r
	return out
}

// BenchmarkHTTP sends the same small POSTs to a loopback HTTP server
// directly and through the tunnel (server → agent → app, keep-alive on both
// paths, 16 concurrent clients) and reports both rates and their ratio.
func BenchmarkHTTP(b *testing.B) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer app.Close()
	target := app.Listener.Addr().String()
	auth := newMemAuth()
	auth.set("agent-1", "s3cret", target)
	s := startServer(b, auth, nil)
	startAgent(b, s.clientConfig("agent-1", "s3cret"), dialHandler([]string{target}))
	waitOnline(b, s, "agent-1")

	const workers = 16
	body := []byte(`{"id":"evt_1","type":"invoice.paid","data":{"amount":4200}}`)
	run := func(c *http.Client, n int) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					resp, err := c.Post(app.URL+"/hooks", "application/json", &sliceReader{b: body})
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	directTr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer directTr.CloseIdleConnections()
	direct, tunnel := &http.Client{Transport: directTr}, &http.Client{Transport: s.Transport("agent-1")}
	var dt, tt time.Duration
	b.ResetTimer()
	for _, n := range rounds(b.N) {
		dt += run(direct, n)
		tt += run(tunnel, n)
	}
	b.StopTimer()
	d, t := float64(b.N)/dt.Seconds(), float64(b.N)/tt.Seconds()
	b.ReportMetric(d, "direct-req/s")
	b.ReportMetric(t, "tunnel-req/s")
	b.ReportMetric(t/d, "tunnel/direct")
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// BenchmarkTCPBulk moves b.N MiB one way over a loopback TCP connection
// directly, over a bare quic-go stream with the tunnel's windows (the
// ceiling for any QUIC tunnel on this machine), and through a Forward over
// each transport (client → TCP → Forward → tunnel → agent → TCP → target,
// the two extra TCP hops included), and reports the rates and the
// tunnel's ratios: over QUIC to the bare stream, over TCP to direct.
func BenchmarkTCPBulk(b *testing.B) {
	sink := ackServer(b)
	auth := newMemAuth()
	s := startServer(b, auth, nil)
	fwd := map[Transport]net.Conn{}
	for _, tr := range []Transport{TransportQUIC, TransportTCP} {
		id := "agent-" + tr.String()
		auth.set(id, "s3cret", sink)
		cfg := s.clientConfig(id, "s3cret")
		cfg.Transport = tr
		startAgent(b, cfg, dialHandler([]string{sink}))
		waitOnline(b, s, id)
		fwd[tr] = forwardConn(b, s, id, sink)
	}
	dc, err := net.Dial("tcp", sink)
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close()
	qs, closeQUIC := rawQUICStream(b)
	defer closeQUIC()

	chunk := make([]byte, 1<<20)
	paths := []struct {
		name string
		c    io.ReadWriter
		wall time.Duration
		cpu  time.Duration
	}{{name: "direct", c: dc}, {name: "quic", c: qs}, {name: "fwd-quic", c: fwd[TransportQUIC]}, {name: "fwd-tcp", c: fwd[TransportTCP]}}
	b.ResetTimer()
	for _, n := range rounds(b.N) {
		for i := range paths {
			p := &paths[i]
			cpu0 := processCPU()
			p.wall += sendRound(b, p.c, chunk, n)
			p.cpu += processCPU() - cpu0
		}
	}
	b.StopTimer()
	mb := float64(b.N) * float64(len(chunk)) / 1e6
	rate := map[string]float64{}
	for _, p := range paths {
		rate[p.name] = mb / p.wall.Seconds()
		b.ReportMetric(rate[p.name], p.name+"-MB/s")
		// CPU per byte (both ends are in this process) survives a busy
		// machine better than wall-clock rates do.
		b.ReportMetric(float64(p.cpu.Microseconds())/mb, p.name+"-cpu-us/MB")
	}
	b.ReportMetric(rate["fwd-quic"]/rate["quic"], "fwd-quic/quic")
	b.ReportMetric(rate["fwd-tcp"]/rate["direct"], "fwd-tcp/direct")
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// forwardConn serves a Forward to target through agentID and returns a
// client connection to it; Cleanup stops both.
func forwardConn(b *testing.B, s *testServer, agentID, target string) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Forward(ctx, ln, agentID, target)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		cancel()
		<-done
	})
	return c
}

// sendRound announces n chunks, writes them and waits for the receiver's
// one-byte acknowledgement that all of them arrived.
func sendRound(b *testing.B, c io.ReadWriter, chunk []byte, n int) time.Duration {
	start := time.Now()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n*len(chunk)))
	if _, err := c.Write(hdr[:]); err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := io.ReadFull(c, hdr[:1]); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// ackReceiver reads rounds (a u64 length, then that many bytes) and
// acknowledges each with one byte, until EOF.
func ackReceiver(c io.ReadWriter) {
	buf := make([]byte, 256<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(hdr[:]))
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(struct{ io.Reader }{c}, n), buf); err != nil {
			return
		}
		if _, err := c.Write(hdr[:1]); err != nil {
			return
		}
	}
}

func ackServer(b *testing.B) string {
	return tcpServer(b, func(c net.Conn) { ackReceiver(c) })
}

// rawQUICStream opens one bare quic-go stream, with the tunnel's
// flow-control windows, to an ackReceiver in this process.
func rawQUICStream(b *testing.B) (*quic.Stream, func()) {
	cert, _ := testCerts(b)
	cfg := DefaultServerConfig()
	qc := cfg.quicConfig()
	qc.MaxIncomingStreams = 10
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, qc)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		st, err := conn.AcceptStream(context.Background())
		if err == nil {
			ackReceiver(st)
		}
		conn.CloseWithError(0, "")
	}()
	conn, err := quic.DialAddr(context.Background(), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, qc)
	if err != nil {
		b.Fatal(err)
	}
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return st, func() {
		conn.CloseWithError(0, "")
		<-done
		ln.Close()
	}
}
