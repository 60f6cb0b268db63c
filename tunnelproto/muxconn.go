package tunnelproto

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// yamux framing, as its spec.md defines it: a 12-byte header (version u8,
// type u8, flags u16, stream id u32, length u32); a data frame's length
// bytes of body follow it, the other types have none.
const (
	yamuxHeaderLen        = 12
	yamuxTypeData         = 0
	yamuxTypeWindowUpdate = 1
	yamuxFlagRST          = 0x8
)

// tlsRecordLen is the largest TLS record payload: a data frame header and
// the first bytes of its body go out together in one record.
const tlsRecordLen = 16 << 10

// lingerTimeout bounds how long a closing TCP connection waits for the
// peer to close its side, so that a last ERROR or GOAWAY is read rather
// than cut by a reset.
const lingerTimeout = time.Second

// yamuxRST is a window update with the RST flag: it resets stream id.
func yamuxRST(id uint32) [yamuxHeaderLen]byte {
	var h [yamuxHeaderLen]byte
	h[1] = yamuxTypeWindowUpdate
	binary.BigEndian.PutUint16(h[2:4], yamuxFlagRST)
	binary.BigEndian.PutUint32(h[4:8], id)
	return h
}

// frameScanner follows yamux frame boundaries through a byte stream.
type frameScanner struct {
	hdr  [yamuxHeaderLen]byte
	n    int    // header bytes seen of the current frame
	body uint32 // body bytes of the current frame still to come
}

func (f *frameScanner) atBoundary() bool { return f.n == 0 && f.body == 0 }

// untilBoundary is how many more bytes end the current frame's header or
// body (0 at a boundary).
func (f *frameScanner) untilBoundary() int {
	if f.body > 0 {
		return int(f.body)
	}
	if f.n > 0 {
		return yamuxHeaderLen - f.n
	}
	return 0
}

func (f *frameScanner) feed(b []byte) {
	for len(b) > 0 {
		if f.body > 0 {
			k := min(uint32(len(b)), f.body)
			f.body -= k
			b = b[k:]
			continue
		}
		k := copy(f.hdr[f.n:], b)
		f.n += k
		b = b[k:]
		if f.n == yamuxHeaderLen {
			f.n = 0
			if f.hdr[1] == yamuxTypeData {
				f.body = binary.BigEndian.Uint32(f.hdr[8:12])
			}
		}
	}
}

// muxConn is the TLS connection as yamux sees it. It adds three things
// yamux v0.1.2 lacks, all at frame boundaries so yamux's own framing is
// never cut:
//
//   - One write per data frame: yamux writes a frame's header and its body
//     in two calls, which over TLS would cost a 12-byte record and a
//     syscall of their own; the header is held and sent with the body.
//   - Stream reset: yamux has no public way to reset a stream. reset sends
//     the peer an RST frame, and hands yamux's own reader the same frame,
//     so both ends drop the stream at once and their waiters wake.
//   - A gentle close: close_notify and FIN first, then up to lingerTimeout
//     for the peer to close, so the last frames are not lost to a reset.
type muxConn struct {
	raw     net.Conn   // the TCP connection, for CloseWrite and deadlines
	wire    *batchConn // what tls writes to
	tls     *tls.Conn
	onClose func()

	wmu   sync.Mutex // guards wscan and held, and serializes writes to tls
	wscan frameScanner
	held  []byte // a data frame header waiting for its body

	qmu  sync.Mutex // guards wrst
	wrst []byte     // RST frames for the peer, sent at the next frame boundary

	rmu         sync.Mutex // guards the fields below
	rscan       frameScanner
	rrst        []byte // RST frames for yamux's reader, handed over at a frame boundary
	reading     bool   // a Read is waiting in tls.Read
	interrupted bool   // its read deadline was moved to the past to hand over rrst
	readErr     error  // the first error the reader saw

	readDone  chan struct{} // closed when the reader has seen an error
	doneOnce  sync.Once
	closeOnce sync.Once
}

func newMuxConn(raw net.Conn, wire *batchConn, tc *tls.Conn, onClose func()) *muxConn {
	return &muxConn{raw: raw, wire: wire, tls: tc, onClose: onClose, held: make([]byte, 0, tlsRecordLen), readDone: make(chan struct{})}
}

func (m *muxConn) Write(b []byte) (int, error) {
	n, err := m.write(b)
	m.flushResets()
	return n, err
}

func (m *muxConn) write(b []byte) (n int, err error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	// The TLS records of one frame leave in one syscall.
	m.wire.begin()
	defer func() {
		if ferr := m.wire.end(); err == nil && ferr != nil {
			n, err = 0, ferr
		}
	}()
	if len(m.held) > 0 {
		// b is the body of the frame whose header is held.
		k := min(len(b), cap(m.held)-len(m.held))
		m.held = append(m.held, b[:k]...)
		_, err := m.tls.Write(m.held)
		m.held = m.held[:0]
		if err == nil && k < len(b) {
			_, err = m.tls.Write(b[k:])
		}
		if err != nil {
			return 0, err
		}
		m.wscan.feed(b)
		return len(b), nil
	}
	if len(b) == yamuxHeaderLen && m.wscan.atBoundary() && b[1] == yamuxTypeData && binary.BigEndian.Uint32(b[8:12]) > 0 {
		m.held = append(m.held, b...)
		m.wscan.feed(b)
		return len(b), nil
	}
	if _, err := m.tls.Write(b); err != nil {
		return 0, err
	}
	m.wscan.feed(b)
	return len(b), nil
}

// flushResets sends queued RST frames if the write side is free and at a
// frame boundary; otherwise whoever holds it sends them after its write.
func (m *muxConn) flushResets() {
	for {
		m.qmu.Lock()
		pending := len(m.wrst) > 0
		m.qmu.Unlock()
		if !pending || !m.wmu.TryLock() {
			return
		}
		if !m.wscan.atBoundary() {
			m.wmu.Unlock()
			return // the body write that follows flushes them
		}
		m.qmu.Lock()
		out := m.wrst
		m.wrst = nil
		m.qmu.Unlock()
		m.wire.begin()
		_, err := m.tls.Write(out)
		if ferr := m.wire.end(); err == nil {
			err = ferr
		}
		m.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// batchConn is the TCP connection under TLS. Between begin and end the
// records TLS writes are gathered and then sent with one write: a 256 KiB
// frame is 16 records, and a syscall each is what costs here. Outside a
// batch (the handshake, an alert) writes go straight through, after what
// is gathered, so the byte order never changes.
type batchConn struct {
	net.Conn
	mu       sync.Mutex // guards the fields below and writes to Conn
	batching bool
	buf      []byte
}

// maxBatch bounds what a batch holds before it is written out.
const maxBatch = 512 << 10

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching && len(b.buf)+len(p) <= maxBatch {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if err := b.flushLocked(); err != nil {
		return 0, err
	}
	return b.Conn.Write(p)
}

func (b *batchConn) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// end sends what the batch gathered.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	return b.flushLocked()
}

// reset resets stream id on both ends.
func (m *muxConn) reset(id uint32) {
	rst := yamuxRST(id)
	m.rmu.Lock()
	m.rrst = append(m.rrst, rst[:]...)
	if m.reading && m.rscan.atBoundary() && !m.interrupted {
		m.interrupted = true
		m.tls.SetReadDeadline(time.Unix(1, 0))
	}
	m.rmu.Unlock()
	m.qmu.Lock()
	m.wrst = append(m.wrst, rst[:]...)
	m.qmu.Unlock()
	m.flushResets()
}

func (m *muxConn) Read(p []byte) (int, error) {
	for {
		m.rmu.Lock()
		if m.interrupted {
			m.interrupted = false
			m.tls.SetReadDeadline(time.Time{})
		}
		if len(m.rrst) > 0 && m.rscan.atBoundary() {
			n := copy(p, m.rrst)
			m.rrst = m.rrst[n:]
			m.rmu.Unlock()
			return n, nil
		}
		limit := len(p)
		if len(m.rrst) > 0 {
			limit = min(limit, m.rscan.untilBoundary())
		}
		m.reading = true
		m.rmu.Unlock()

		n, err := m.tls.Read(p[:limit])

		m.rmu.Lock()
		m.reading = false
		m.rscan.feed(p[:n])
		handOver := m.interrupted && err != nil && isTimeout(err)
		if err != nil && !handOver && m.readErr == nil {
			m.readErr = err
		}
		m.rmu.Unlock()
		switch {
		case handOver && n > 0:
			return n, nil
		case handOver:
			continue
		case err != nil:
			m.doneOnce.Do(func() { close(m.readDone) })
		}
		return n, err
	}
}

// readError is the first error the reader saw, nil while it reads on.
func (m *muxConn) readError() error {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	return m.readErr
}

// Close sends close_notify and FIN after what was written, waits up to
// lingerTimeout for the peer to close its side, then closes. Idempotent.
func (m *muxConn) Close() error {
	m.closeOnce.Do(func() {
		// A write stuck on a peer that stopped reading gives up in time.
		m.raw.SetWriteDeadline(time.Now().Add(lingerTimeout))
		m.wmu.Lock()
		m.tls.CloseWrite()
		m.wmu.Unlock()
		if tc, ok := m.raw.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		t := time.NewTimer(lingerTimeout)
		select {
		case <-m.readDone:
		case <-t.C:
		}
		t.Stop()
		m.raw.Close()
		if m.onClose != nil {
			m.onClose()
		}
	})
	return nil
}
