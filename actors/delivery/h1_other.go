//go:build !linux

package delivery

import "net"

// idleProbe cannot peek at a connection on this platform: an idle
// connection the receiver closed is found when a request fails on it, and
// the request goes out again on a new connection (h1Pool.roundTrip).
type idleProbe struct{}

func (*idleProbe) init(net.Conn) {}

func (*idleProbe) usable() bool { return true }
