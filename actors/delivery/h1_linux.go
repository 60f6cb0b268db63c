package delivery

import (
	"net"
	"syscall"
)

// idleUsable reports whether an idle keep-alive connection can carry the
// next request: the receiver has neither closed nor reset it, and has sent
// nothing on it since its last answer was read (bytes nobody asked for
// would be taken for the next request's answer). net/http's Transport
// learns the same from its reader goroutine, blocked on every idle
// connection; the pool has none, so it peeks once, without blocking, when
// it takes the connection.
func idleUsable(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var (
		b    [1]byte
		perr error
	)
	// Control, not Read: Read would first fail on the last attempt's
	// deadline, long past on a connection idle for a while.
	if err := rc.Control(func(fd uintptr) {
		_, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	// Nothing to read yet is the one healthy answer; a read of 0 bytes with
	// no error is the receiver's close.
	return perr == syscall.EAGAIN
}
