package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/tunnelproto"
)

// The bare quic-go baselines of tunnel-tcp: a sink that reads each stream to
// its end and answers with the count (8 bytes, big-endian), and a client in
// the harness whose streams the load writes to. Both use the tunnel's
// flow-control windows (DEPENDENCIES.md measures the ceiling the same way).
// The sink runs in the harness's own process (quic_mbps, the goal's
// baseline) or in a child process (quic_2proc_mbps): a tunnel's two ends
// are always two processes, and each costs CPU of its own (its scheduler,
// sysmon, wakeups across processes) that one process does not pay.

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

// quicSinkALPN names the sink's protocol.
const quicSinkALPN = "webhookops-bench-sink"

// listenQUICSink listens on a loopback UDP port with a fresh certificate.
func listenQUICSink() (*quic.Listener, error) {
	dir, err := os.MkdirTemp("", "webhookops-bench-quic-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cert, _, err := tunnelproto.LoadOrCreateCertificate(dir)
	if err != nil {
		return nil, err
	}
	return quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicSinkALPN}}, quicBenchConfig())
}

// serveQUICSink reads every stream of every connection on ln to its end
// and answers the count, until ln is closed; it waits for its readers.
func serveQUICSink(ln *quic.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				st, err := conn.AcceptStream(context.Background())
				if err != nil {
					return
				}
				wg.Go(func() {
					var n atomic.Int64
					countUntilError(st, &n)
					var b [8]byte
					binary.BigEndian.PutUint64(b[:], uint64(n.Load()))
					st.Write(b[:])
					st.Close()
				})
			}
		})
	}
}

// quicSink is a client connection to a sink, here or in a child process.
type quicSink struct {
	client *quic.Conn
	n      atomic.Int64 // bytes the sink has answered for
	active atomic.Int64 // streams whose count has not come back yet
	wg     sync.WaitGroup
	stop   func() // stops the sink
}

// startQUICSink starts a sink in this process.
func startQUICSink() (*quicSink, error) {
	ln, err := listenQUICSink()
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveQUICSink(ln)
	}()
	stop := func() {
		ln.Close()
		<-done
	}
	q, err := dialQUICSink(ln.Addr().String(), stop)
	if err != nil {
		stop()
		return nil, err
	}
	return q, nil
}

// startQUICSinkProcess starts a sink in a child process (bin bench
// quic-sink), which ends when its stdin closes. It returns the sink and the
// child's pid, for CPU accounting.
func startQUICSinkProcess(ctx context.Context, bin string) (*quicSink, int, error) {
	cmd := exec.Command(bin, "bench", quicSinkCommand)
	cmd.SysProcAttr = childSysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	var a string
	select {
	case a = <-addr:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	if a == "" {
		stop()
		return nil, 0, fmt.Errorf("%s bench %s gave no address: %s", bin, quicSinkCommand, strings.TrimSpace(stderr.String()))
	}
	q, err := dialQUICSink(a, stop)
	if err != nil {
		stop()
		return nil, 0, err
	}
	return q, cmd.Process.Pid, nil
}

func dialQUICSink(addr string, stop func()) (*quicSink, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Only the harness's own sink is at the other end: the certificate is
	// not checked.
	c, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicSinkALPN}}, quicBenchConfig())
	if err != nil {
		return nil, err
	}
	return &quicSink{client: c, stop: stop}, nil
}

// sinkStream is one stream to the sink: Close sends FIN and collects the
// sink's count in the background.
type sinkStream struct {
	*quic.Stream
	q    *quicSink
	once sync.Once
}

func (s *sinkStream) Close() error {
	s.once.Do(func() {
		err := s.Stream.Close()
		if err != nil {
			s.Stream.CancelRead(0)
			s.q.active.Add(-1)
			return
		}
		s.q.wg.Go(func() {
			defer s.q.active.Add(-1)
			s.Stream.SetReadDeadline(time.Now().Add(5 * time.Second))
			var b [8]byte
			if _, err := io.ReadFull(s.Stream, b[:]); err == nil {
				s.q.n.Add(int64(binary.BigEndian.Uint64(b[:])))
			}
			s.Stream.CancelRead(0)
		})
	})
	return nil
}

// target is the bulk target whose streams are bare quic-go streams to the
// sink.
func (q *quicSink) target(label string) *bulkTarget {
	return &bulkTarget{
		label: label,
		dial: func(ctx context.Context) (io.WriteCloser, error) {
			st, err := q.client.OpenStreamSync(ctx)
			if err != nil {
				return nil, err
			}
			q.active.Add(1)
			return &sinkStream{Stream: st, q: q}, nil
		},
		received: q.n.Load,
		settle: func() {
			for deadline := time.Now().Add(2 * time.Second); q.active.Load() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		},
	}
}

// Close closes the client, waits for its count readers and stops the sink.
func (q *quicSink) Close() error {
	q.client.CloseWithError(0, "")
	q.wg.Wait()
	q.stop()
	return nil
}

// quicSinkCommand is the hidden `bench` subcommand a two-process baseline
// starts.
const quicSinkCommand = "quic-sink"

func quicSinkCmd() *cli.Command {
	return &cli.Command{
		Name:   quicSinkCommand,
		Usage:  "tunnel-tcp's two-process baseline: a bare QUIC sink on loopback that prints its address and runs until stdin closes",
		Hidden: true,
		Action: func(c *cli.Context) error { return runQUICSink(os.Stdin, c.App.Writer) },
	}
}

// runQUICSink serves a sink, prints its address and returns once stdin
// ends (the harness closed it, or died).
func runQUICSink(stdin io.Reader, stdout io.Writer) error {
	ln, err := listenQUICSink()
	if err != nil {
		return fmt.Errorf("bench %s: %w", quicSinkCommand, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveQUICSink(ln)
	}()
	_, err = fmt.Fprintln(stdout, ln.Addr().String())
	if err == nil {
		_, err = io.Copy(io.Discard, stdin)
	}
	ln.Close()
	<-done
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}
