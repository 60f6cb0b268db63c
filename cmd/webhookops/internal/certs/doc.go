// Package certs gives the node's HTTP listeners their TLS configuration:
// a certificate and key read from files and re-read when the files change,
// or certificates obtained and renewed over ACME (Let's Encrypt or any RFC
// 8555 CA) by golang.org/x/crypto/acme/autocert.
//
// Both share one base (BaseConfig): TLS 1.2 or later with Go's default
// cipher suites and curves, and ALPN offering h2 before http/1.1, so a
// net/http server on such a listener speaks HTTP/2.
//
// # Files
//
// A Reloader answers every handshake with the pair it holds, after a stat
// of both files: when either changed (modification time or size) it reads
// the pair again. A pair that does not load (a half-written file, a key
// that does not match) keeps the previous certificate in service and is
// logged once; the next change is tried again. So a renewal tool that
// writes the two files one after the other never leaves the listener
// without a certificate, and no restart or signal is needed.
//
// # ACME
//
// The CA proves control of the domain with TLS-ALPN-01 on the ingest
// listener itself (it must be reachable on port 443 from the CA), or
// HTTP-01 when the operator also gives a plain listener (port 80), which
// answers challenges and redirects everything else to https. The account
// key and certificates are cached in a directory (the data dir's acme/),
// so a restart does not ask the CA again; autocert renews 30 days before
// expiry. A handshake without SNI (a health check by IP) gets the first
// domain's certificate.
//
// # What this package must never do
//
// Serve a certificate that does not match its key; ask a CA for a name
// outside the configured domains; log a private key.
package certs
