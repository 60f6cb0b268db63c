package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/actors/agentreg"
	"github.com/webhookops/webhookops/actors/refusals"
	"github.com/webhookops/webhookops/tunnelproto"
	"github.com/webhookops/webhookops/wal"
)

type tunnel struct {
	agents     *agentreg.Registry
	publicAddr string
}

// newTunnel binds the agents' listeners (QUIC on UDP, TCP+TLS on the same
// port number) when --tunnel-addr is set; it serves from Start on. A
// cluster member's forwards listen only while their agent has a session
// with it.
func newTunnel(c *cli.Context, db *wal.DB, log *slog.Logger, tally *refusals.Tally, member bool) (*tunnel, error) {
	addr := c.String("tunnel-addr")
	if addr == "" {
		return nil, nil
	}
	cfg := tunnelproto.DefaultServerConfig()
	cfg.Addr = addr
	cfg.Logger = log
	cfg.MaxPending = c.Int("tunnel-max-unauthenticated")
	cfg.MaxPendingPerAddr = c.Int("tunnel-max-unauthenticated-per-ip")
	var err error
	if cf := c.String("tunnel-cert"); cf != "" {
		cfg.TLSCert, _, err = tunnelproto.LoadCertificateFiles(cf, c.String("tunnel-key"))
	} else {
		cfg.TLSCert, _, err = tunnelproto.LoadOrCreateCertificate(filepath.Join(c.String("data-dir"), "tunnel"))
	}
	if err != nil {
		return nil, fmt.Errorf("tunnel certificate: %w", err)
	}
	a, err := agentreg.New(agentreg.Config{Tunnel: cfg, DB: db, Logger: log, Refusals: tally, ListenWhileOnline: member})
	if err != nil {
		return nil, fmt.Errorf("--tunnel-addr: %w", err)
	}
	t := &tunnel{agents: a, publicAddr: c.String("tunnel-public-addr")}
	if t.publicAddr == "" {
		_, port, _ := net.SplitHostPort(a.Addr().String())
		host, herr := os.Hostname()
		if herr != nil || host == "" {
			host = "localhost"
		}
		if h, _, _ := net.SplitHostPort(addr); h != "" && h != "0.0.0.0" && h != "::" {
			host = h
		}
		t.publicAddr = net.JoinHostPort(host, port)
	}
	log.Info("tunnel listening", "addr", a.Addr().String(), "transports", "quic+tcp", "public", t.publicAddr, "fingerprint", a.Fingerprint())
	return t, nil
}
