package certs

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/cmd/webhookops/internal/tlstest"
)

const testDomain = "hooks.webhookops.test"

// checkIssued verifies, as a provider would, the certificate the listener
// now serves for testDomain: chained to the CA's root, over HTTP/2.
func checkIssued(t *testing.T, addr net.Addr, ca *tlstest.CA) {
	t.Helper()
	hc := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Roots, ServerName: testDomain},
			ForceAttemptHTTP2: true,
		},
	}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + addr.String() + "/")
	if err != nil {
		t.Fatalf("request with the issued certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
		t.Fatalf("proto %s, server saw %s; want HTTP/2", resp.Proto, body)
	}
	if names := resp.TLS.PeerCertificates[0].DNSNames; len(names) != 1 || names[0] != testDomain {
		t.Fatalf("certificate names %v", names)
	}
}

// TestACMETLSALPN01: the CA validates the domain over TLS-ALPN-01 on the
// ingest listener itself, the certificate is issued, served over HTTP/2
// and cached; a restart serves it from the cache without the CA.
func TestACMETLSALPN01(t *testing.T) {
	// The listener's port must be known to the CA's validator first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ca := tlstest.Start(t, tlstest.Port(t, tlstest.FreeAddr(t)), port)

	cache := filepath.Join(t.TempDir(), "acme")
	a, err := NewACME(ACMEOptions{Domains: []string{testDomain}, Email: "ops@webhookops.test", DirectoryURL: ca.DirectoryURL, CacheDir: cache, HTTPClient: ca.Client})
	if err != nil {
		t.Fatal(err)
	}
	addr := listenOn(t, "127.0.0.1:"+strconv.Itoa(port), a.Config())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leaves, err := a.Warm(ctx, addr)
	if err != nil {
		t.Fatalf("obtaining the certificate: %v", err)
	}
	if len(leaves) != 1 || leaves[0].DNSNames[0] != testDomain {
		t.Fatalf("warm gave %v", leaves)
	}
	checkIssued(t, addr, ca)

	// A handshake without SNI (a health check by IP) gets the domain's
	// certificate rather than an error.
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake without SNI: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].DNSNames; got[0] != testDomain {
		t.Fatalf("without SNI: %v", got)
	}
	c.Close()

	// A name that is not configured is refused without asking the CA.
	if _, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true, ServerName: "other.webhookops.test"}); err == nil {
		t.Fatal("a handshake for an unconfigured name succeeded")
	}

	entries, err := os.ReadDir(cache)
	if err != nil || len(entries) < 2 {
		t.Fatalf("cache %s holds %v (%v); want the account key and the certificate", cache, entries, err)
	}
	for _, e := range entries {
		if fi, _ := e.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("cache file %s has mode %v", e.Name(), fi.Mode().Perm())
		}
	}

	// Restart against a CA that no longer answers: the cache serves.
	b, err := NewACME(ACMEOptions{Domains: []string{testDomain}, DirectoryURL: "https://127.0.0.1:1/dir", CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	addr2 := listenOn(t, "127.0.0.1:0", b.Config())
	checkIssued(t, addr2, ca)
}

// TestACMEHTTP01: when TLS-ALPN-01 cannot reach the node (here the CA
// dials a closed port for it), the HTTP-01 handler on the plain listener
// proves the domain; other plain requests are redirected to https.
func TestACMEHTTP01(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := tlstest.Port(t, tlstest.FreeAddr(t))
	ca := tlstest.Start(t, httpLn.Addr().(*net.TCPAddr).Port, closedPort)

	a, err := NewACME(ACMEOptions{Domains: []string{testDomain}, DirectoryURL: ca.DirectoryURL, CacheDir: t.TempDir(), HTTPClient: ca.Client})
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: a.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); plain.Serve(httpLn) }()
	t.Cleanup(func() { plain.Close(); <-done })

	addr := listenOn(t, "127.0.0.1:0", a.Config())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.Warm(ctx, addr); err != nil {
		t.Fatalf("obtaining the certificate over HTTP-01: %v", err)
	}
	checkIssued(t, addr, ca)

	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+httpLn.Addr().String()+"/in/demo", nil)
	req.Host = testDomain
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://"+testDomain+"/in/demo" {
		t.Fatalf("plain request: %d Location %q", resp.StatusCode, loc)
	}
}

func TestNewACMERefuses(t *testing.T) {
	for _, o := range []ACMEOptions{
		{CacheDir: "x"},
		{Domains: []string{"localhost"}, CacheDir: "x"},
		{Domains: []string{"a.example"}},
	} {
		if _, err := NewACME(o); err == nil {
			t.Errorf("NewACME(%+v) accepted", o)
		}
	}
	if got := dialable(&net.TCPAddr{IP: net.IPv6unspecified, Port: 443}); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("dialable([::]:443) = %s", got)
	}
}
