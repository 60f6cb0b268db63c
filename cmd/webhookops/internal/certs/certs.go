package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// BaseConfig is the TLS configuration every listener starts from: TLS 1.2
// or later, Go's default suites, HTTP/2 offered first.
func BaseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// Settings are the serve flags that decide how the listeners get their
// certificates. The zero value is plain HTTP on both listeners.
type Settings struct {
	CertFile, KeyFile           string // ingest listener, from files
	AdminCertFile, AdminKeyFile string // admin listener, from files
	ACMEDomains                 []string
	ACMEEmail                   string
	ACMEHTTPAddr                string // plain listener for HTTP-01 and redirects
	ACMEDirectory               string // the CA's directory URL; "" is Let's Encrypt
}

// Validate checks that the flags make one coherent choice and names the
// flag that does not. It does no I/O.
func (s Settings) Validate() error {
	if (s.CertFile == "") != (s.KeyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if (s.AdminCertFile == "") != (s.AdminKeyFile == "") {
		return errors.New("--admin-tls-cert and --admin-tls-key go together")
	}
	if len(s.ACMEDomains) == 0 {
		switch {
		case s.ACMEEmail != "":
			return errors.New("--acme-email needs --acme-domain")
		case s.ACMEHTTPAddr != "":
			return errors.New("--acme-http needs --acme-domain")
		case s.ACMEDirectory != "":
			return errors.New("--acme-directory needs --acme-domain")
		}
		return nil
	}
	if s.CertFile != "" {
		return errors.New("--tls-cert and --acme-domain both set: choose files or ACME for the ingest listener")
	}
	for _, d := range s.ACMEDomains {
		if err := checkDomain(d); err != nil {
			return fmt.Errorf("--acme-domain %q: %w", d, err)
		}
	}
	if s.ACMEEmail != "" && !strings.Contains(s.ACMEEmail, "@") {
		return fmt.Errorf("--acme-email %q is not an email address", s.ACMEEmail)
	}
	if s.ACMEDirectory != "" && !strings.HasPrefix(s.ACMEDirectory, "https://") {
		return fmt.Errorf("--acme-directory %q must be an https:// URL", s.ACMEDirectory)
	}
	return nil
}

// IngestTLS reports whether the ingest listener serves TLS.
func (s Settings) IngestTLS() bool { return s.CertFile != "" || len(s.ACMEDomains) > 0 }

// checkDomain accepts what a CA can issue for over TLS-ALPN-01 or HTTP-01:
// a DNS name with at least two labels, no wildcard, no IP, no port.
func checkDomain(d string) error {
	switch {
	case d == "":
		return errors.New("empty")
	case strings.HasPrefix(d, "*."):
		return errors.New("wildcards need DNS-01, which is not supported: name each host")
	case strings.Contains(d, ":"):
		return errors.New("a domain has no port or scheme")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return errors.New("an IP address, not a domain")
	}
	if !strings.Contains(strings.Trim(d, "."), ".") {
		return errors.New("needs at least two labels (hooks.example.com)")
	}
	for _, label := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad label %q", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("bad character %q", c)
			}
		}
	}
	return nil
}

// IsLoopback reports whether a listener's address is reachable only from
// this host. An unspecified address (":8080", "0.0.0.0") is not.
func IsLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
