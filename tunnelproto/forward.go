package tunnelproto

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Forward serves a raw TCP forward: every connection accepted on ln is
// dialled through the agent to target (KindTCP) and joined with it, with
// half-close in both directions. It returns when ctx is done (cutting the
// copies) or when ln is closed, after its copies have ended. A failed Dial
// closes that one connection and is logged; Forward keeps serving.
func (s *Server) Forward(ctx context.Context, ln net.Listener, agentID, target string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, err := s.Dial(ctx, agentID, KindTCP, target)
			if err != nil {
				s.log.Warn("forward: dial through agent failed", "agent", agentID, "target", target, "client", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			cut := context.AfterFunc(ctx, func() {
				c.Close()
				sc.Close()
			})
			defer cut()
			Join(c, sc)
		}()
	}
}

// Transport returns the agent's http.Transport (one per agent id, shared by
// every caller) whose connections are streams through the agent (KindHTTP),
// so a request to http://localhost:3000/hooks reaches localhost:3000 as seen
// from the agent. It uses no proxy. Each idle keep-alive connection holds
// one stream; the server closes idle ones when the agent drains and when the
// server closes.
func (s *Server) Transport(agentID string) *http.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr := s.transports[agentID]; tr != nil {
		return tr
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return s.Dial(ctx, agentID, KindHTTP, addr)
		},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	s.transports[agentID] = tr
	return tr
}

func (s *Server) closeAllIdle() {
	s.mu.Lock()
	trs := make([]*http.Transport, 0, len(s.transports))
	for _, tr := range s.transports {
		trs = append(trs, tr)
	}
	s.mu.Unlock()
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
}

func (s *Server) closeIdle(agentID string) {
	s.mu.Lock()
	tr := s.transports[agentID]
	s.mu.Unlock()
	if tr != nil {
		tr.CloseIdleConnections()
	}
}

// Join copies a→b and b→a until both directions end. When one side's
// reads end cleanly, the other side's write half is closed (CloseWrite if it
// has one), so half-closed protocols keep working. An error in either
// direction closes both connections. Both are closed when Join returns. It
// returns the first error other than a clean end of stream.
func Join(a, b net.Conn) error {
	errc := make(chan error, 1)
	go func() { errc <- pipe(b, a) }()
	err1 := pipe(a, b)
	err2 := <-errc
	a.Close()
	b.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// Copy buffers: a connection starts with a small one (an HTTP exchange
// fits), and one whose read fills it is moving bulk and gets a large one.
// Large writes matter on every hop: each is a syscall, a QUIC or yamux
// write that wakes the packer, a TLS record batch; the large size cuts
// them fourfold against 64 KiB. Both sizes are pooled.
const (
	smallCopyBuf = 16 << 10
	largeCopyBuf = 256 << 10
)

var (
	smallBufPool = sync.Pool{New: func() any { return new([smallCopyBuf]byte) }}
	largeBufPool = sync.Pool{New: func() any { return new([largeCopyBuf]byte) }}
)

// pipe copies src to dst, then half-closes dst. On error it closes both so
// the other direction ends too.
func pipe(dst, src net.Conn) error {
	_, err := copyAdaptive(dst, src)
	if err != nil {
		dst.Close()
		src.Close()
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return dst.Close()
}

// copyAdaptive copies src to dst until src ends (nil error) or either
// fails, moving to the large buffer after the first read that fills the
// small one.
func copyAdaptive(dst io.Writer, src io.Reader) (int64, error) {
	small := smallBufPool.Get().(*[smallCopyBuf]byte)
	var large *[largeCopyBuf]byte
	defer func() {
		if large != nil {
			largeBufPool.Put(large)
		} else {
			smallBufPool.Put(small)
		}
	}()
	buf := small[:]
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr == nil && w != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, werr
			}
			if n == len(buf) && large == nil {
				smallBufPool.Put(small)
				large = largeBufPool.Get().(*[largeCopyBuf]byte)
				buf = large[:]
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
