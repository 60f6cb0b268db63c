//go:build !linux

package delivery

import "net"

// idleUsable cannot peek at a connection on this platform: an idle
// connection the receiver closed is found when a request fails on it, and
// the request goes out again on a new connection (h1Pool.roundTrip).
func idleUsable(net.Conn) bool { return true }
