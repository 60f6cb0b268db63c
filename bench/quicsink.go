package bench

import (
	"context"
	"crypto/tls"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/webhookops/webhookops/tunnelproto"
)

// quicSink is the bare quic-go baseline of tunnel-tcp: a listener in this
// process that counts what arrives on its streams, and one client
// connection to it whose streams the load writes to. Both ends use the
// tunnel's flow-control windows, so the figure is the ceiling of a QUIC
// tunnel on this machine (DEPENDENCIES.md measures it the same way).
type quicSink struct {
	ln     *quic.Listener
	client *quic.Conn
	n      atomic.Int64
	active atomic.Int64 // streams not yet read to their end
	wg     sync.WaitGroup
}

func quicBenchConfig() *quic.Config {
	d := tunnelproto.DefaultServerConfig()
	return &quic.Config{
		InitialStreamReceiveWindow:     1 << 20, // as the tunnel's
		MaxStreamReceiveWindow:         d.MaxStreamReceiveWindow,
		InitialConnectionReceiveWindow: 2 << 20,
		MaxConnectionReceiveWindow:     d.MaxConnectionReceiveWindow,
		MaxIncomingStreams:             1024,
		MaxIdleTimeout:                 time.Minute,
	}
}

func startQUICSink() (*quicSink, error) {
	dir, err := os.MkdirTemp("", "webhookops-bench-quic-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cert, _, err := tunnelproto.LoadOrCreateCertificate(dir)
	if err != nil {
		return nil, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, quicBenchConfig())
	if err != nil {
		return nil, err
	}
	q := &quicSink{ln: ln}
	q.wg.Go(q.accept)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Only this process is at the other end: the certificate is not checked.
	q.client, err = quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, quicBenchConfig())
	if err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *quicSink) accept() {
	for {
		conn, err := q.ln.Accept(context.Background())
		if err != nil {
			return
		}
		q.wg.Go(func() {
			for {
				st, err := conn.AcceptStream(context.Background())
				if err != nil {
					return
				}
				q.active.Add(1)
				q.wg.Go(func() {
					defer q.active.Add(-1)
					countUntilError(st, &q.n)
				})
			}
		})
	}
}

// target is the bulk target whose streams are bare quic-go streams.
func (q *quicSink) target(label string) *bulkTarget {
	return &bulkTarget{
		label: label,
		dial: func(ctx context.Context) (io.WriteCloser, error) {
			return q.client.OpenStreamSync(ctx) // Close sends FIN; the reader reads to the end
		},
		received: q.n.Load,
		settle: func() {
			for deadline := time.Now().Add(2 * time.Second); q.active.Load() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		},
	}
}

// Close closes both ends and waits for the readers.
func (q *quicSink) Close() error {
	if q.client != nil {
		q.client.CloseWithError(0, "")
	}
	err := q.ln.Close()
	q.wg.Wait()
	return err
}
