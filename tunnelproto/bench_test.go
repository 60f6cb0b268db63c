package tunnelproto

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

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
	run := func(tr *http.Transport) time.Duration {
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < b.N; i += workers {
					resp, err := c.Post(app.URL+"/hooks", "application/json", bytesReader(body))
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
	b.ResetTimer()
	direct := run(&http.Transport{MaxIdleConnsPerHost: 64})
	tunnel := run(s.Transport("agent-1"))
	b.StopTimer()
	d, t := float64(b.N)/direct.Seconds(), float64(b.N)/tunnel.Seconds()
	b.ReportMetric(d, "direct-req/s")
	b.ReportMetric(t, "tunnel-req/s")
	b.ReportMetric(t/d, "tunnel/direct")
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

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
// ceiling for any QUIC tunnel on this machine), and through the tunnel
// (Dial kind tcp → agent → TCP target), and reports all three rates and the
// tunnel's ratios to the other two.
func BenchmarkTCPBulk(b *testing.B) {
	sink := discardServer(b)
	auth := newMemAuth()
	auth.set("agent-1", "s3cret", sink)
	s := startServer(b, auth, nil)
	startAgent(b, s.clientConfig("agent-1", "s3cret"), dialHandler([]string{sink}))
	waitOnline(b, s, "agent-1")

	chunk := make([]byte, 1<<20)
	send := func(c net.Conn) time.Duration {
		start := time.Now()
		for range b.N {
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		io.ReadAll(c) // the sink answers after EOF: everything arrived
		c.Close()
		return time.Since(start)
	}
	b.ResetTimer()
	dc, err := net.Dial("tcp", sink)
	if err != nil {
		b.Fatal(err)
	}
	direct := send(dc)
	quicRaw := rawQUICCopy(b, chunk)
	tc, err := s.Dial(context.Background(), "agent-1", KindTCP, sink)
	if err != nil {
		b.Fatal(err)
	}
	tunnel := send(tc)
	b.StopTimer()
	mb := float64(b.N) * float64(len(chunk)) / 1e6
	d, q, t := mb/direct.Seconds(), mb/quicRaw.Seconds(), mb/tunnel.Seconds()
	b.ReportMetric(d, "direct-MB/s")
	b.ReportMetric(q, "quic-MB/s")
	b.ReportMetric(t, "tunnel-MB/s")
	b.ReportMetric(t/d, "tunnel/direct")
	b.ReportMetric(t/q, "tunnel/quic")
}

// discardServer reads each connection to EOF, then writes "ok".
func discardServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 256<<10)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// rawQUICCopy writes b.N chunks on one bare quic-go stream between two
// endpoints in this process, with the tunnel's flow-control windows.
func rawQUICCopy(b *testing.B, chunk []byte) time.Duration {
	cert, _ := testCerts(b)
	cfg := DefaultServerConfig()
	cfg.HandshakeTimeout, cfg.HeartbeatTimeout = 5*time.Second, 30*time.Second
	qc := cfg.quicConfig()
	qc.MaxIncomingStreams = 10
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, qc)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			done <- err
			return
		}
		defer conn.CloseWithError(0, "")
		st, err := conn.AcceptStream(context.Background())
		if err != nil {
			done <- err
			return
		}
		_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{st}, make([]byte, 256<<10))
		st.Write([]byte("ok"))
		st.Close()
		done <- err
	}()
	conn, err := quic.DialAddr(context.Background(), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, qc)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for range b.N {
		if _, err := st.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	io.ReadAll(st)
	elapsed := time.Since(start)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}
