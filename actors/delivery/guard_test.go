package delivery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webhookops/webhookops/wal/model"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		// reason is the refusal without allow_private_network ("" = allowed);
		// always marks a refusal that allow_private_network does not lift.
		reason string
		always bool
	}{
		{"8.8.8.8", "", false},
		{"1.1.1.1", "", false},
		{"2606:4700:4700::1111", "", false},
		{"100.63.255.255", "", false},
		{"100.128.0.0", "", false},
		{"172.32.0.1", "", false},
		{"64:ff9b::808:808", "", false}, // NAT64 of 8.8.8.8
		{"127.0.0.1", "loopback", false},
		{"127.255.255.254", "loopback", false},
		{"::1", "loopback", false},
		{"::ffff:127.0.0.1", "loopback", false},
		{"10.0.0.5", "private", false},
		{"172.16.0.1", "private", false},
		{"172.31.255.255", "private", false},
		{"192.168.1.1", "private", false},
		{"::ffff:10.0.0.5", "private", false},
		{"fc00::1", "private", false},
		{"fd12:3456::1", "private", false},
		{"fec0::1", "private", false},
		{"169.254.1.1", "link-local", false},
		{"fe80::1", "link-local", false},
		{"fe80::1%eth0", "link-local", false},
		{"0.0.0.0", "unspecified", false},
		{"::", "unspecified", false},
		{"0.1.2.3", "reserved", false},
		{"240.0.0.1", "reserved", false},
		{"255.255.255.255", "reserved", false},
		{"::10.0.0.5", "reserved", false},
		{"224.0.0.1", "multicast", false},
		{"ff02::1", "multicast", false},
		{"100.64.0.1", "CGNAT", false},
		{"100.127.255.255", "CGNAT", false},
		{"64:ff9b::a00:5", "private (NAT64 for 10.0.0.5)", false},
		{"169.254.169.254", "cloud metadata", true},
		{"::ffff:169.254.169.254", "cloud metadata", true},
		{"fd00:ec2::254", "cloud metadata", true},
		{"169.254.170.2", "cloud metadata", true},
		{"100.100.100.200", "cloud metadata", true},
		{"64:ff9b::a9fe:a9fe", "cloud metadata", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			err := checkAddr(a, false)
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason != "" && (err == nil || !strings.Contains(err.Error(), tc.reason)):
				t.Fatalf("got %v, want a refusal naming %q", err, tc.reason)
			}
			err = checkAddr(a, true)
			if tc.always != (err != nil) {
				t.Fatalf("with allow_private_network: %v", err)
			}
		})
	}
}

// The dial-time check runs on the address the socket connects to, which is
// a resolved address, never a name.
func TestGuardControl(t *testing.T) {
	ctl := guardControl(false)
	for addr, wantErr := range map[string]bool{
		"93.184.215.14:443":   false,
		"[2606:4700::1]:443":  false,
		"10.0.0.5:80":         true,
		"[::ffff:10.0.0.5]:8": true,
		"[fe80::1%eth0]:80":   true,
		"example.com:80":      true, // not an address: never dialled unchecked
		"garbage":             true,
	} {
		if err := ctl("tcp4", addr, nil); (err != nil) != wantErr {
			t.Errorf("%s: err = %v, want error %v", addr, err, wantErr)
		}
	}
}

func TestDeliverSSRFGuard(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	resolver := newTestResolver(t, dnsRecords{
		"hooks.internal.test.":    {netip.MustParseAddr("10.0.0.5")},
		"loop.internal.test.":     {netip.MustParseAddr("127.0.0.1")},
		"mapped.internal.test.":   {netip.MustParseAddr("::ffff:127.0.0.1")},
		"metadata.internal.test.": {netip.MustParseAddr("169.254.169.254")},
		"mixed.internal.test.":    {netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("127.0.0.1")},
	})
	c := newTestClient(t, Options{Resolver: resolver})

	for _, tc := range []struct {
		url          string
		allowPrivate bool
		want         string // "" means the loopback server is reached
	}{
		{"http://127.0.0.1:" + port + "/", false, "destination address 127.0.0.1 is loopback; set allow_private_network to allow it"},
		{"http://[::1]:" + port + "/", false, "destination address ::1 is loopback; set allow_private_network to allow it"},
		{"http://[::ffff:127.0.0.1]:" + port + "/", false, "destination address 127.0.0.1 is loopback"},
		{"http://0.0.0.0:" + port + "/", false, "destination address 0.0.0.0 is unspecified"},
		{"https://10.0.0.5/", false, "destination address 10.0.0.5 is private; set allow_private_network to allow it"},
		{"http://169.254.169.254/latest/meta-data/", false, "destination address 169.254.169.254 is a cloud metadata address and is never allowed"},
		{"http://169.254.169.254/latest/meta-data/", true, "destination address 169.254.169.254 is a cloud metadata address and is never allowed"},
		// Names: resolved, then refused at dial time.
		{"http://hooks.internal.test/", false, "destination address 10.0.0.5 is private; set allow_private_network to allow it"},
		{"http://loop.internal.test:" + port + "/", false, "destination address 127.0.0.1 is loopback"},
		{"http://mapped.internal.test:" + port + "/", false, "destination address 127.0.0.1 is loopback"},
		// Every resolved address is checked; which refusal is reported
		// depends on the resolver's address ordering.
		{"http://mixed.internal.test:" + port + "/", false, "; set allow_private_network to allow it"},
		{"http://metadata.internal.test/", true, "destination address 169.254.169.254 is a cloud metadata address"},
		{"http://localhost:" + port + "/", false, "is loopback"},
		// inet_aton spellings of 127.0.0.1 are names to the Go resolver;
		// whatever resolves them, the result is checked.
		{"http://2130706433:" + port + "/", false, "no such host"},
		{"http://127.1:" + port + "/", false, "no such host"},
		{"http://0x7f000001:" + port + "/", false, "no such host"},
		// allow_private_network reaches the loopback server, by address or by name.
		{"http://127.0.0.1:" + port + "/", true, ""},
		{"http://loop.internal.test:" + port + "/", true, ""},
	} {
		name := tc.url
		if tc.allowPrivate {
			name += " allow_private_network"
		}
		t.Run(name, func(t *testing.T) {
			before := hits.Load()
			d := model.Destination{Slug: "d", URL: tc.url, AllowPrivateNetwork: tc.allowPrivate}
			res := c.Deliver(context.Background(), d, Request{EventID: "e", Attempt: 1})
			reached := hits.Load() - before
			if tc.want == "" {
				if !res.Success || reached != 1 {
					t.Fatalf("result = %+v, server reached %d times; want a delivery", res, reached)
				}
				return
			}
			if res.Success || res.StatusCode != 0 || !strings.Contains(res.Err, tc.want) {
				t.Fatalf("result = %+v, want a refusal containing %q", res, tc.want)
			}
			if reached != 0 {
				t.Fatalf("refused destination was reached %d times", reached)
			}
		})
	}
}

func TestBlockedErrorIsFound(t *testing.T) {
	err := checkAddr(netip.MustParseAddr("10.1.2.3"), false)
	var be *blockedError
	if !errors.As(err, &be) || be.addr.String() != "10.1.2.3" {
		t.Fatalf("err = %v", err)
	}
}
