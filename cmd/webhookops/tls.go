package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
	"github.com/webhookops/webhookops/cmd/webhookops/internal/certs"
	"golang.org/x/term"
)

func tlsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"WEBHOOKOPS_TLS_CERT"}, Usage: "PEM certificate (with its chain) for the ingest listener; re-read when it changes"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{"WEBHOOKOPS_TLS_KEY"}, Usage: "PEM key for --tls-cert"},
		&cli.StringFlag{Name: "admin-tls-cert", EnvVars: []string{"WEBHOOKOPS_ADMIN_TLS_CERT"}, Usage: "PEM certificate for the admin listener; re-read when it changes"},
		&cli.StringFlag{Name: "admin-tls-key", EnvVars: []string{"WEBHOOKOPS_ADMIN_TLS_KEY"}, Usage: "PEM key for --admin-tls-cert"},
		&cli.StringSliceFlag{Name: "acme-domain", EnvVars: []string{"WEBHOOKOPS_ACME_DOMAIN"}, Usage: "obtain and renew the ingest listener's certificate for this domain over ACME (Let's Encrypt unless --acme-directory); the CA must reach the ingest listener on port 443, or --acme-http on port 80; repeat for more names"},
		&cli.StringFlag{Name: "acme-email", EnvVars: []string{"WEBHOOKOPS_ACME_EMAIL"}, Usage: "contact address given to the CA (expiry notices)"},
		&cli.StringFlag{Name: "acme-http", EnvVars: []string{"WEBHOOKOPS_ACME_HTTP"}, Usage: "plain HTTP address, e.g. :80, that answers ACME HTTP-01 challenges and redirects everything else to https"},
		&cli.StringFlag{Name: "acme-directory", EnvVars: []string{"WEBHOOKOPS_ACME_DIRECTORY"}, Usage: "ACME directory URL of another CA, or Let's Encrypt's staging directory for a trial"},
	}
}

func tlsSettings(c *cli.Context) certs.Settings {
	return certs.Settings{
		CertFile: c.String("tls-cert"), KeyFile: c.String("tls-key"),
		AdminCertFile: c.String("admin-tls-cert"), AdminKeyFile: c.String("admin-tls-key"),
		ACMEDomains: c.StringSlice("acme-domain"), ACMEEmail: c.String("acme-email"),
		ACMEHTTPAddr: c.String("acme-http"), ACMEDirectory: c.String("acme-directory"),
	}
}

// listenerTLS is what the flags made of the two listeners.
type listenerTLS struct {
	ingest, admin *tls.Config // nil: plain HTTP
	acme          *certs.ACME
	acmeHTTPAddr  string
}

// setupTLS reads the certificate files (an error names the flag) and sets
// up ACME; it asks nothing of a CA yet.
func setupTLS(s certs.Settings, dataDir string, log *slog.Logger) (*listenerTLS, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	out := &listenerTLS{acmeHTTPAddr: s.ACMEHTTPAddr}
	if s.CertFile != "" {
		r, err := certs.NewReloader(s.CertFile, s.KeyFile, log)
		if err != nil {
			return nil, err
		}
		out.ingest = r.Config()
	}
	if s.AdminCertFile != "" {
		r, err := certs.NewReloader(s.AdminCertFile, s.AdminKeyFile, log)
		if err != nil {
			return nil, err
		}
		out.admin = r.Config()
	}
	if len(s.ACMEDomains) > 0 {
		a, err := certs.NewACME(certs.ACMEOptions{
			Domains: s.ACMEDomains, Email: s.ACMEEmail, DirectoryURL: s.ACMEDirectory,
			CacheDir: filepath.Join(dataDir, "acme"),
		})
		if err != nil {
			return nil, err
		}
		out.acme, out.ingest = a, a.Config()
	}
	return out, nil
}

// serveHTTP serves srv on ln, with TLS when srv has a TLS config.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// The functions below take whether a listener serves TLS rather than
// reading its server's TLSConfig: http.Server.Serve sets a TLSConfig of its
// own on a plain server (to offer HTTP/2), so once serving has begun a
// plain listener would read as TLS (and the read would race with Serve).

// bindURL is the listener's scheme and its real bind address, for the
// start-up line: a 0.0.0.0 or [::] bind shows as such, so the operator sees
// the listener is reachable from other hosts.
func bindURL(secure bool, ln net.Listener) string {
	if !secure {
		return "http://" + ln.Addr().String()
	}
	return "https://" + ln.Addr().String()
}

// listenerURL is how a listener is reached from this host (the default
// --public-url): an unspecified bind address shows as localhost.
func listenerURL(secure bool, ln net.Listener, acme []string) string {
	if !secure {
		return "http://" + displayAddr(ln.Addr())
	}
	if len(acme) > 0 {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		if port == "443" {
			return "https://" + acme[0]
		}
		return "https://" + net.JoinHostPort(acme[0], port)
	}
	return "https://" + displayAddr(ln.Addr())
}

// warnIfPlain logs once per listener that is plain HTTP and reachable from
// other hosts.
func warnIfPlain(log *slog.Logger, name string, secure bool, ln net.Listener, advice string) {
	if !secure && !certs.IsLoopback(ln.Addr()) {
		log.Warn(name+" listener is plain HTTP on a non-loopback address; "+advice, "addr", ln.Addr().String())
	}
}

// warmACME obtains the certificates in the background so the first
// provider does not wait on the CA, and logs the outcome. The caller
// waits on wg after cancelling ctx.
func warmACME(ctx context.Context, wg *sync.WaitGroup, a *certs.ACME, addr net.Addr, domains []string, log *slog.Logger) {
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, certs.WarmTimeout)
		defer cancel()
		leaves, err := a.Warm(ctx, addr)
		if err != nil {
			if ctx.Err() == nil || ctx.Err() == context.DeadlineExceeded {
				log.Error("ACME: no certificate yet; providers will get TLS errors until the CA can validate this host (is port 443, or --acme-http on port 80, reachable from the internet for "+strings.Join(domains, ", ")+"?)", "err", err)
			}
			return
		}
		for _, l := range leaves {
			log.Info("ACME certificate ready", "domains", l.DNSNames, "issuer", l.Issuer.CommonName, "not_after", l.NotAfter)
		}
	})
}

// useColor decides whether text logs get ANSI colours: only on a terminal,
// and never when NO_COLOR is set to anything (https://no-color.org).
func useColor(isTerminal bool, noColor string) bool {
	return isTerminal && noColor == ""
}

func stderrColor() bool {
	return useColor(term.IsTerminal(int(os.Stderr.Fd())), os.Getenv("NO_COLOR"))
}
