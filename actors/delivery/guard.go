package delivery

import (
	"fmt"
	"net/netip"
	"syscall"
)

// blockedError is the SSRF guard's refusal. Its text is what an operator
// sees as the attempt's error, so it names the address, why it is refused
// and what would allow it.
type blockedError struct {
	addr   netip.Addr
	reason string // "private", "loopback", ...
	always bool   // refused even with allow_private_network
}

func (e *blockedError) Error() string {
	if e.always {
		return fmt.Sprintf("destination address %s is %s and is never allowed", e.addr, e.reason)
	}
	return fmt.Sprintf("destination address %s is %s; set allow_private_network to allow it", e.addr, e.reason)
}

// metadataAddrs are cloud metadata and credential endpoints. They are refused
// even when a destination allows private networks: no webhook receiver lives
// there and they hand out the host's cloud credentials.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, DigitalOcean instance metadata
	netip.MustParseAddr("fd00:ec2::254"),   // AWS instance metadata over IPv6
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task credentials
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS pod identity
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS pod identity over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud metadata
	netip.MustParseAddr("168.63.129.16"),   // Azure WireServer
}

var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	reserved4  = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	siteLocal6 = netip.MustParsePrefix("fec0::/10")   // deprecated, still routed internally
	v4compat6  = netip.MustParsePrefix("::/96")       // deprecated IPv4-compatible addresses
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
)

// checkAddr reports whether a connection to a may be made. IPv4-mapped IPv6
// addresses are unwrapped and NAT64 addresses are judged by the IPv4 address
// they embed, so neither form smuggles an internal IPv4 address through.
func checkAddr(a netip.Addr, allowPrivate bool) error {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return fmt.Errorf("delivery: refusing to dial an invalid address")
	}
	for _, m := range metadataAddrs {
		if a == m {
			return &blockedError{addr: a, reason: "a cloud metadata address", always: true}
		}
	}
	if nat64.Contains(a) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if err := checkAddr(v4, allowPrivate); err != nil {
			be := err.(*blockedError)
			return &blockedError{addr: a, reason: fmt.Sprintf("%s (NAT64 for %s)", be.reason, v4), always: be.always}
		}
		return nil
	}
	if allowPrivate {
		return nil
	}
	if reason := privateReason(a); reason != "" {
		return &blockedError{addr: a, reason: reason}
	}
	return nil
}

// privateReason names the non-public range a falls in, or returns "".
// a is unmapped.
func privateReason(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate(), siteLocal6.Contains(a):
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	case cgnat.Contains(a):
		return "in the shared CGNAT range 100.64.0.0/10"
	case thisNet.Contains(a), reserved4.Contains(a), v4compat6.Contains(a), nat64Local.Contains(a):
		return "reserved"
	}
	return ""
}

// guardControl returns a net.Dialer.Control function that checks the address
// each socket is about to connect to. It runs after name resolution, for
// every address the dialer tries, so the address checked is the address used.
func guardControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// Never dial what could not be checked.
			return fmt.Errorf("delivery: refusing to dial unparseable address %q", address)
		}
		return checkAddr(ap.Addr(), allowPrivate)
	}
}
