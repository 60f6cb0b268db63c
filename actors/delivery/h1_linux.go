package delivery

import (
	"net"
	"syscall"
)

// idleProbes: this platform can peek at an idle connection, so
// plain-http destinations use the pool (h1Pool).
const idleProbes = true

// idleProbe tells whether an idle keep-alive connection can carry the next
// request: the receiver has neither closed nor reset it, and has sent
// nothing on it since its last answer was read (bytes nobody asked for
// would be taken for the next request's answer). net/http's Transport
// learns the same from its reader goroutine, blocked on every idle
// connection; the pool has none, so it peeks once, without blocking, when
// it takes the connection. Made once per connection, so a peek allocates
// nothing.
type idleProbe struct {
	rc   syscall.RawConn // nil: not a socket, nothing to peek at
	peek func(fd uintptr)
	b    [1]byte
	err  error // of the last peek
}

func (p *idleProbe) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.rc = rc
	p.peek = func(fd uintptr) {
		_, _, p.err = syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}
}

func (p *idleProbe) usable() bool {
	if p.rc == nil {
		return true
	}
	// Control, not Read: Read would first fail on the last attempt's
	// deadline, long past on a connection idle for a while.
	if err := p.rc.Control(p.peek); err != nil {
		return false
	}
	// Nothing to read yet is the one healthy answer; a read of 0 bytes
	// with no error is the receiver's close.
	return p.err == syscall.EAGAIN
}
