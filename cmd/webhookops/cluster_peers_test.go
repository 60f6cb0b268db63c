package main

import (
	"crypto/tls"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/webhookops/webhookops/actors/cluster"
)

func TestParseMemberURLs(t *testing.T) {
	good := map[string]map[uint64]string{
		"1=http://127.0.0.1:8081,2=http://[::1]:8082":              {1: "http://127.0.0.1:8081", 2: "http://[::1]:8082"},
		" 3=https://node3.example:8443/ , 4=https://10.0.0.4:8443": {3: "https://node3.example:8443", 4: "https://10.0.0.4:8443"},
	}
	for in, want := range good {
		got, err := parseMemberURLs(in)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("parseMemberURLs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", ",", "1", "0=http://127.0.0.1:1", "x=http://127.0.0.1:1",
		"1=http://10.0.0.1:8081",      // plain off loopback
		"1=http://localhost:8081",     // a name may resolve anywhere
		"1=ftp://127.0.0.1:21",        // not http
		"1=127.0.0.1:8081",            // no scheme
		"1=https://h:1/api",           // a path
		"1=https://h:1?x=1",           // a query
		"1=https://h:1,1=https://h:2", // an id twice
	} {
		if got, err := parseMemberURLs(in); err == nil {
			t.Errorf("parseMemberURLs(%q) = %v, want an error", in, got)
		}
	}
}

// A member reaches another member's admin API over https with a
// certificate from the cluster CA (`cluster cert`), verified against
// --cluster-ca and presenting its own; a certificate from another CA is
// refused.
func TestMemberPeersTLS(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	other := filepath.Join(dir, "other")
	for _, d := range []string{ca, other} {
		if err := cluster.CreateCA(d); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint64{1, 2} {
			if err := cluster.IssueNode(d, id, []string{"127.0.0.1"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	serve := func(caDir string) (*httptest.Server, chan string) {
		cert, key := cluster.NodeFiles(caDir, 2)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		clients := make(chan string, 1)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) > 0 {
				clients <- r.TLS.PeerCertificates[0].Subject.CommonName
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv, clients
	}
	caCert, _ := cluster.CAFiles(ca)
	cert, key := cluster.NodeFiles(ca, 1)
	files := cluster.TLSFiles{CA: caCert, Cert: cert, Key: key}

	good, clients := serve(ca)
	p, err := newMemberPeers("1=https://127.0.0.1:1,2="+good.URL, 1, files)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Client.Get(p.URLs[2] + "/healthz")
	if err != nil {
		t.Fatalf("a member's admin API with a cluster certificate: %v", err)
	}
	resp.Body.Close()
	if cn := <-clients; cn == "" {
		t.Fatal("the member presented no certificate")
	}

	bad, _ := serve(other)
	p, err = newMemberPeers("1=https://127.0.0.1:1,2="+bad.URL, 1, files)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := p.Client.Get(p.URLs[2] + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a certificate from another CA was accepted")
	}

	// Without --member-admin-urls the client is the same; the URLs come
	// from the members' records.
	p, err = newMemberPeers("", 1, files)
	if err != nil || len(p.URLs) != 0 || p.Client == nil {
		t.Fatalf("peers without --member-admin-urls = %+v, %v", p, err)
	}
	if _, err := newMemberPeers("1=https://127.0.0.1:1", 1, cluster.TLSFiles{CA: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

// TestAdminAdvertiseURL: the admin URL a member records, from
// --admin-advertise-url or its admin listener's bound address.
func TestAdminAdvertiseURL(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name      string
		advertise string
		bound     netip.AddrPort
		secure    bool
		want      string
		none      bool // no URL, a reason
		bad       bool // refused
	}{
		{name: "loopback, plain", bound: ap("127.0.0.1:8081"), want: "http://127.0.0.1:8081"},
		{name: "IPv6 loopback, plain", bound: ap("[::1]:8082"), want: "http://[::1]:8082"},
		{name: "IPv4 in IPv6 loopback", bound: ap("[::ffff:127.0.0.1]:8083"), want: "http://127.0.0.1:8083"},
		{name: "loopback, TLS", bound: ap("127.0.0.1:8443"), secure: true, want: "https://127.0.0.1:8443"},
		{name: "one address, TLS", bound: ap("10.0.0.2:8443"), secure: true, want: "https://10.0.0.2:8443"},
		{name: "one address, plain", bound: ap("10.0.0.2:8081"), none: true},
		{name: "wildcard IPv4", bound: ap("0.0.0.0:8081"), none: true},
		{name: "wildcard IPv6, TLS", bound: ap("[::]:8443"), secure: true, none: true},
		{name: "no address", none: true},
		{name: "advertised beats a wildcard", advertise: "https://node2.example:8443/", bound: ap("0.0.0.0:8443"), secure: true, want: "https://node2.example:8443"},
		{name: "advertised https before a TLS proxy", advertise: "https://node2.example", bound: ap("127.0.0.1:8081"), want: "https://node2.example"},
		{name: "advertised loopback http", advertise: "http://127.0.0.1:9000", bound: ap("0.0.0.0:8081"), want: "http://127.0.0.1:9000"},
		{name: "advertised http off loopback", advertise: "http://10.0.0.2:8081", bound: ap("10.0.0.2:8081"), bad: true},
		{name: "advertised http to a TLS listener", advertise: "http://127.0.0.1:8443", bound: ap("127.0.0.1:8443"), secure: true, bad: true},
		{name: "advertised with a path", advertise: "https://node2.example/admin", bad: true},
		{name: "advertised without a scheme", advertise: "node2.example:8443", bad: true},
		{name: "advertised with credentials", advertise: "https://u:p@node2.example", bad: true},
	} {
		got, why, err := adminAdvertiseURL(tc.advertise, tc.bound, tc.secure)
		switch {
		case tc.bad:
			if err == nil {
				t.Errorf("%s: %q, %q; want an error", tc.name, got, why)
			}
		case tc.none:
			if err != nil || got != "" || why == "" {
				t.Errorf("%s: %q, %q, %v; want no URL and a reason", tc.name, got, why, err)
			}
		default:
			if err != nil || got != tc.want || why != "" {
				t.Errorf("%s: %q, %q, %v; want %q", tc.name, got, why, err, tc.want)
			}
		}
	}
}

// A member's recorded admin URL on loopback names that member only if its
// raft address is on loopback too (every member on this machine);
// otherwise it runs elsewhere, and the URL would hand the caller's token
// to whatever listens on this machine's loopback at that port.
func TestReachableAdminURL(t *testing.T) {
	for _, tc := range []struct {
		raft, admin, want string
	}{
		{"127.0.0.1:7102", "http://127.0.0.1:8082", "http://127.0.0.1:8082"},
		{"[::1]:7102", "http://[::1]:8082", "http://[::1]:8082"},
		{"localhost:7102", "https://127.0.0.1:8082", "https://127.0.0.1:8082"},
		{"10.0.0.2:7102", "http://127.0.0.1:8082", ""},
		{"node2.example:7102", "https://[::1]:8443", ""},
		{"node2.example:7102", "https://localhost:8443", ""},
		{"10.0.0.2:7102", "https://10.0.0.2:8443", "https://10.0.0.2:8443"},
		{"node2.example:7102", "https://node2.example:8443", "https://node2.example:8443"},
		{"10.0.0.2:7102", "", ""},
	} {
		if got := reachableAdminURL(cluster.MemberRecord{ID: 2, Address: tc.raft, AdminURL: tc.admin}); got != tc.want {
			t.Errorf("raft %s, admin %q: %q, want %q", tc.raft, tc.admin, got, tc.want)
		}
	}
}
