// Package tunnelproto is the tunnel between the WebhookOps gateway and its
// agents (agentd): the wire format, the authentication handshake and the
// session on both ends, over QUIC or, where UDP is blocked, over TCP+TLS 1.3
// with streams multiplexed by yamux (same port number, same frames, same
// pinning and exporter-bound proof). spec.md beside this file describes
// every frame precisely enough for a second implementation.
//
// # What it owns
//
//   - The frame codec: an 8-byte big-endian header (version, type, flags,
//     length), one file per frame type (parseX / Append / Length), limits
//     checked before anything is allocated, unknown types skipped, the
//     hot path (OPEN, OPEN_OK, ERROR, PING/PONG) free of allocations.
//   - The handshake and its security: TLS 1.3 (over QUIC, or over TCP) with
//     ALPN "webhookops-tunnel/1"; the agent pins the server certificate's
//     SHA-256 (LoadOrCreateCertificate makes one on first start); the agent
//     proves it knows its secret with an HMAC bound to both nonces and to
//     this TLS connection's exporter value, so a captured proof is useless on
//     any other connection; per-address failure rate limits (none per id: no lockout by id).
//   - Sessions: heartbeats, last-seen, GOAWAY, a new session replacing an
//     old one, Disconnect for revocation; MEMBERS, a cluster's tunnels told
//     to agents (Server.SetMembers, ClientConfig.OnMembers); one stream per forwarded request
//     or TCP connection, opened by the server (Dial, Forward, Transport) and
//     answered by the agent (Client.Serve, Request).
//   - The two transports behind one small interface (conn, stream in
//     transport.go): quic-go, and yamux over crypto/tls (transport_tcp.go).
//     The agent's TransportAuto races them: QUIC first, TCP once QUIC failed
//     or FallbackDelay passed, first TLS handshake wins.
//
// # Why yamux, and what muxconn.go adds to it
//
// github.com/hashicorp/yamux is small, widely deployed (Consul, Nomad,
// frp's TCP transport) and has half-close, per-stream flow control and a
// written spec. v0.1.2 lacks two things a tunnel needs, and muxconn.go adds
// them underneath it, at yamux frame boundaries: one TLS record per data
// frame (yamux writes header and body separately) and a stream reset (yamux
// has no public one). Having no STOP_SENDING, a fully closed stream whose
// peer keeps writing is reset after closeGrace.
//
// # What it must never do
//
//   - Store anything, or know about events, destinations or Pebble: who may
//     connect and where is asked of the Authenticator each time.
//   - Log or emit a secret or a proof. Refusals tell the agent only a code;
//     the detail (unknown agent versus wrong secret) goes to the audit Event.
//   - Trust the server's decision alone on the agent side, or the agent's on
//     the server side: both ends enforce allowed targets.
//   - Leave a goroutine behind: Server.Close and Client.Serve wait for
//     everything they started.
//
// # Handshake
//
// The agent opens the connection and its first bidirectional stream, the
// control stream:
//
//	agent                                               server
//	  |---- QUIC or TCP, TLS 1.3, ALPN webhookops-tunnel/1 -->|
//	  |<--- certificate; agent checks sha256 pin ------------|
//	  |                                                      |
//	  |---- HELLO(version, agent id, client nonce) --------->|  version, rate limit,
//	  |                                                      |  nonce never seen
//	  |<--- CHALLENGE(server nonce) -------------------------|
//	  |                                                      |
//	  |---- AUTH(HMAC-SHA256(secret, "webhookops-tunnel/1 auth"
//	  |          || len(id) || id || client nonce
//	  |          || server nonce || TLS exporter)) --------->|  Lookup(id), verify
//	  |                                                      |
//	  |<--- OK(heartbeat interval) | ERROR(code, reason) ----|
//	  |<--- MEMBERS(address, pin ...) -----------------------|  a cluster's tunnels,
//	  |                                                      |  again on a change
//	  |---- PING(seq) every interval ----------------------->|  last seen
//	  |<--- PONG(seq) ---------------------------------------|
//	  |<--- GOAWAY(code, reason) ----------------------------|  drain, replaced,
//	  |                                                      |  revoked, shutdown
//
// Then, for every forwarded request or TCP connection, the server opens a
// stream:
//
//	server                                              agent
//	  |---- OPEN(request id, kind http|tcp, host:port) ---->|  allow list, dial
//	  |<--- OPEN_OK(request id) | ERROR(code, reason) ------|
//	  |<=== raw bytes both ways, FIN for half-close =======>|
//
// # Wiring (server side)
//
//	cert, fp, err := tunnelproto.LoadOrCreateCertificate(dataDir)
//	srv, err := tunnelproto.NewServer(tunnelproto.ServerConfig{
//		Addr: ":7443", TLSCert: cert, Auth: registry, OnEvent: audit, Logger: log})
//	go srv.Serve(ctx)          // returns after ctx ends or Close
//	defer srv.Close()
//	hc := &http.Client{Transport: srv.Transport(agentID)}
//	conn, err := srv.Dial(ctx, agentID, tunnelproto.KindTCP, "db:5432")
//	srv.Disconnect(agentID)    // after revoking or rotating its secret
package tunnelproto
