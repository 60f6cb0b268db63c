package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// stamp is what tells a changed file from an unchanged one without
// reading it.
type stamp struct {
	mod  time.Time
	size int64
}

func statStamp(path string) (stamp, error) {
	fi, err := os.Stat(path) // follows symlinks, as certbot's live/ links need
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// Reloader serves a certificate and key from files and reads them again
// when either changes. Its GetCertificate goes into tls.Config.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu         sync.Mutex // guards the fields below
	cert       *tls.Certificate
	loaded     [2]stamp // of the files cert was read from
	failed     [2]stamp // of files that did not load, reported once
	unreadable bool     // a stat failed and was reported
}

// NewReloader reads the pair once; an error here is the operator's to fix
// before the node starts.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	st, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.loaded = cert, st
	r.warnIfExpiring(cert)
	return r, nil
}

func (r *Reloader) stamps() ([2]stamp, error) {
	c, err := statStamp(r.certFile)
	if err != nil {
		return [2]stamp{}, fmt.Errorf("TLS certificate: %w", err)
	}
	k, err := statStamp(r.keyFile)
	if err != nil {
		return [2]stamp{}, fmt.Errorf("TLS key: %w", err)
	}
	return [2]stamp{c, k}, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

// GetCertificate answers a handshake with the current pair, reading the
// files again first if they changed since. A stat of two files costs far
// less than the handshake it precedes.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.stamps()
	if err != nil {
		// A file gone for a moment (a rename in progress) keeps the pair
		// in service; say so once.
		if !r.unreadable {
			r.unreadable = true
			r.log.Warn("TLS files unreadable; keeping the certificate loaded before", "err", err)
		}
		return r.cert, nil
	}
	r.unreadable = false
	if st == r.loaded || st == r.failed {
		return r.cert, nil
	}
	cert, err := r.load()
	if err != nil {
		r.failed = st
		r.log.Warn("TLS files changed but do not load; keeping the certificate loaded before", "err", err)
		return r.cert, nil
	}
	r.cert, r.loaded, r.failed = cert, st, [2]stamp{}
	r.log.Info("TLS certificate reloaded", "cert", r.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	r.warnIfExpiring(cert)
	return r.cert, nil
}

// expiringWithin is when a loaded certificate earns a warning.
const expiringWithin = 7 * 24 * time.Hour

func (r *Reloader) warnIfExpiring(cert *tls.Certificate) {
	if left := time.Until(cert.Leaf.NotAfter); left < expiringWithin {
		r.log.Warn("TLS certificate expires soon", "cert", r.certFile, "not_after", cert.Leaf.NotAfter, "left", left.Round(time.Minute))
	}
}

// Config is BaseConfig answering from this Reloader.
func (r *Reloader) Config() *tls.Config {
	c := BaseConfig()
	c.GetCertificate = r.GetCertificate
	return c
}
