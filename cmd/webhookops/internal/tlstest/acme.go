// Package tlstest holds TLS helpers for tests: certificate files signed by
// a throwaway root (files.go), and a real ACME CA on loopback: Let's
// Encrypt's Pebble test CA (its web front end, validation authority and
// CA, in process) with a DNS server from its companion challtestsrv that
// answers 127.0.0.1 for every name. The validation authority dials the
// ports the test names, so a test proves that a node really answers
// TLS-ALPN-01 or HTTP-01, then verifies the issued chain against the CA's
// root. Nothing here reaches the internet.
//
// Pebble's validation goroutines outlive the test (they have no stop), so
// packages using this must not run goleak over these tests.
package tlstest

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// CA is a running test CA.
type CA struct {
	DirectoryURL string       // the ACME directory, https on loopback
	Client       *http.Client // trusts the directory's own certificate
	Roots        *x509.CertPool
	// DirectoryCertPEM is the certificate of the directory's HTTPS server,
	// for a child process to trust through SSL_CERT_FILE.
	DirectoryCertPEM []byte
}

// Start runs a CA whose validation authority dials httpPort for HTTP-01
// and tlsPort for TLS-ALPN-01 on 127.0.0.1, whatever the domain. It stops
// when the test ends.
func Start(t testing.TB, httpPort, tlsPort int) *CA {
	t.Helper()
	// Read by va.New and wfe.New: no random validation delays, no
	// injected bad-nonce errors, so a run takes a second, not ten.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(testWriter{t}, "pebble ", 0)
	}

	dnsAddr := FreeAddr(t)
	dns, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("") // A records only: the node under test listens on IPv4
	dns.Run()
	t.Cleanup(dns.Shutdown)
	waitTCP(t, dnsAddr)

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &CA{
		DirectoryURL:     srv.URL + wfe.DirectoryPath,
		Client:           srv.Client(),
		Roots:            roots,
		DirectoryCertPEM: pemCert(srv.Certificate().Raw),
	}
}

// FreeAddr returns a loopback TCP address nothing listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Port is the port of a host:port.
func Port(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitTCP(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("test DNS server on %s did not start: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
