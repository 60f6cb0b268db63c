package agentd

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/tunnelproto"
)

// FuzzValidEndpoints: whatever address and pin a MEMBERS entry (or
// --tunnel) carries, the check never panics, and what it accepts is a
// host:port a dial can use, with a pin.
func FuzzValidEndpoints(f *testing.F) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	for _, addr := range []string{"n1.example:9700", "[::1]:9700", "10.0.0.1:https", "host:0", "host:65536", "\x00:\n", "a b:1", ":1", "h:", "[::1%eth0]:1", "bücher.example:1"} {
		f.Add(addr, pin)
	}
	f.Add("n1.example:9700", "sha256:zz")
	f.Fuzz(func(t *testing.T, addr, pin string) {
		if validEndpoints([]Endpoint{{Addr: addr, Fingerprint: pin}}) != nil {
			return
		}
		h, p, err := net.SplitHostPort(addr)
		if err != nil || h == "" || p == "" {
			t.Fatalf("accepted %q, not host:port (%v)", addr, err)
		}
		if strings.ContainsFunc(addr, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			t.Fatalf("accepted %q, with a control character or a space", addr)
		}
		if n, err := strconv.Atoi(p); err == nil && (n < 1 || n > 65535) {
			t.Fatalf("accepted %q, port out of range", addr)
		}
		if _, err := tunnelproto.ParseFingerprint(pin); err != nil {
			t.Fatalf("accepted pin %q: %v", pin, err)
		}
	})
}
