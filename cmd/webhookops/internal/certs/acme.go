package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEOptions configures certificates obtained over ACME.
type ACMEOptions struct {
	Domains []string // the names to serve; the first answers handshakes without SNI
	Email   string   // the CA's contact for expiry and account notices; optional
	// DirectoryURL is the CA's ACME directory; "" is Let's Encrypt's
	// production directory.
	DirectoryURL string
	// CacheDir keeps the account key and the certificates across restarts.
	CacheDir string
	// HTTPClient talks to the CA; nil is a default client. Tests use it to
	// trust a CA running on loopback.
	HTTPClient *http.Client
}

// ACME obtains and renews certificates for the configured domains.
type ACME struct {
	m       *autocert.Manager
	domains []string
}

// NewACME checks the options and sets up the manager. Nothing is asked of
// the CA until the first handshake (or Warm).
func NewACME(o ACMEOptions) (*ACME, error) {
	if len(o.Domains) == 0 {
		return nil, errors.New("certs: ACME needs at least one domain")
	}
	for _, d := range o.Domains {
		if err := checkDomain(d); err != nil {
			return nil, fmt.Errorf("certs: domain %q: %w", d, err)
		}
	}
	if o.CacheDir == "" {
		return nil, errors.New("certs: ACME needs a cache directory")
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(o.Domains...),
		Cache:      autocert.DirCache(o.CacheDir),
		Email:      o.Email,
		Client: &acme.Client{
			DirectoryURL: o.DirectoryURL,
			HTTPClient:   o.HTTPClient,
			UserAgent:    "webhookops",
		},
	}
	return &ACME{m: m, domains: append([]string(nil), o.Domains...)}, nil
}

// Config is BaseConfig answering from the ACME manager, with the
// TLS-ALPN-01 protocol offered so the CA can validate on this listener.
func (a *ACME) Config() *tls.Config {
	c := BaseConfig()
	c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "" {
			h := *hello
			h.ServerName = a.domains[0]
			hello = &h
		}
		return a.m.GetCertificate(hello)
	}
	return c
}

// HTTPHandler answers HTTP-01 challenges and redirects every other
// request to https. Serving it on port 80 lets the CA use HTTP-01 when
// TLS-ALPN-01 does not reach the ingest listener.
func (a *ACME) HTTPHandler() http.Handler {
	h := a.m.HTTPHandler(nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert checks the Host header against the domains as it is;
		// a CA (or a port mapping) that names a port other than 80 would
		// be refused for a name that is configured.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// Warm makes one TLS connection to the listener at addr for each domain,
// so certificates are obtained at start rather than by the first provider
// to post, and returns their leaves. It waits for the CA (which may take
// a minute) unless ctx ends first.
func (a *ACME) Warm(ctx context.Context, addr net.Addr) ([]*x509.Certificate, error) {
	target := dialable(addr)
	var out []*x509.Certificate
	for _, d := range a.domains {
		dl := tls.Dialer{Config: &tls.Config{ServerName: d, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
		conn, err := dl.DialContext(ctx, "tcp", target)
		if err != nil {
			return out, fmt.Errorf("certificate for %s: %w", d, err)
		}
		out = append(out, conn.(*tls.Conn).ConnectionState().PeerCertificates[0])
		conn.Close()
	}
	return out, nil
}

// dialable turns a listener's address into one this host can dial: the
// unspecified address becomes loopback.
func dialable(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		// Go's listener on the unspecified address takes IPv4 too.
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// WarmTimeout bounds how long serve waits on the CA in the background.
const WarmTimeout = 3 * time.Minute
