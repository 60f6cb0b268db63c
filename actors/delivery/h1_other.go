//go:build !linux

package delivery

import "net"

// idleProbes: this platform cannot peek at an idle connection, so the
// pool could not keep its promise (no request on a connection the
// receiver closed or sent unasked bytes on: those bytes would be read as
// the next event's answer). Plain-http destinations go through the
// Transport here, whose reader sees such bytes; the pool is not used.
const idleProbes = false

// idleProbe is never asked on this platform (see idleProbes).
type idleProbe struct{}

func (*idleProbe) init(net.Conn) {}

func (*idleProbe) usable() bool { return true }
