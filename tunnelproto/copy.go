package tunnelproto

import (
	"io"
	"net"
	"sync"
)

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
// fits), and one whose read fills it is moving bulk and gets large ones.
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
	abort := func() {
		dst.Close()
		src.Close()
	}
	if _, err := copyAdaptive(dst, src, abort); err != nil {
		abort()
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return dst.Close()
}

// copyAdaptive copies src to dst until src ends (nil error) or either
// fails. It starts with a small buffer and one goroutine; after the first
// read that fills the small buffer it hands over to copyBulk. abort must
// make a blocked src.Read return (closing src does).
func copyAdaptive(dst io.Writer, src io.Reader, abort func()) (int64, error) {
	small := smallBufPool.Get().(*[smallCopyBuf]byte)
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
				smallBufPool.Put(small)
				return total, werr
			}
			if n == len(buf) && rerr == nil {
				smallBufPool.Put(small)
				k, err := copyBulk(dst, src, abort)
				return total + k, err
			}
		}
		if rerr == io.EOF {
			smallBufPool.Put(small)
			return total, nil
		}
		if rerr != nil {
			smallBufPool.Put(small)
			return total, rerr
		}
	}
}

// bulkDepth is how many large buffers one bulk copy has in flight: one
// being written while the next is read.
const bulkDepth = 2

// copyBulk copies src to dst with reads and writes overlapped: this
// goroutine reads into one large buffer while a second writes the one
// before. A QUIC stream's Write returns only once the packer has taken
// nearly all of the data, so with one goroutine the packer would idle
// during every read from the TCP side, and the TCP side during every
// packing. A failed write calls abort, so the read under way ends too;
// copyBulk returns after its writer has.
func copyBulk(dst io.Writer, src io.Reader, abort func()) (int64, error) {
	type chunk struct {
		b *[largeCopyBuf]byte
		n int
	}
	full := make(chan chunk, bulkDepth)
	free := make(chan *[largeCopyBuf]byte, bulkDepth)
	for range bulkDepth {
		free <- largeBufPool.Get().(*[largeCopyBuf]byte)
	}
	var (
		written int64
		werr    error
	)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for c := range full {
			if werr == nil {
				w, err := dst.Write(c.b[:c.n])
				written += int64(w)
				if err == nil && w != c.n {
					err = io.ErrShortWrite
				}
				if err != nil {
					werr = err
					abort()
				}
			}
			free <- c.b
		}
	}()
	var rerr error
	for {
		// The writer hands every buffer back, failed or not, and only
		// stops once full is closed: this receive cannot hang.
		b := <-free
		n, err := src.Read(b[:])
		if n > 0 {
			full <- chunk{b, n}
		} else {
			free <- b
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	close(full)
	<-wdone
	close(free)
	for b := range free {
		largeBufPool.Put(b)
	}
	if werr != nil {
		return written, werr
	}
	return written, rerr
}
