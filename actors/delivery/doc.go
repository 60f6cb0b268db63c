// Package delivery makes one outbound delivery attempt of one event to one
// destination, and holds the arithmetic a destination actor needs around it
// (retry backoff, Retry-After, the Standard Webhooks signature).
//
// # What it owns
//
//   - The request a receiver sees. The body is sent byte-exact. The source's
//     headers are forwarded in the order they were received, minus:
//     hop-by-hop headers (Connection, Keep-Alive, Proxy-*, TE, Trailer,
//     Transfer-Encoding, Upgrade, and every header named in Connection);
//     Host and Content-Length, which are recomputed for the destination;
//     Expect and Accept-Encoding, which describe the source's own hop to us;
//     User-Agent; and every header in our namespace (webhook-id,
//     webhook-timestamp, webhook-signature, X-Webhookops-*), so a sender can
//     never spoof them. A source's own signature headers (Stripe-Signature,
//     X-Hub-Signature-256, ...) are kept on purpose: the body is byte-exact,
//     so a receiver that already verifies the provider's signature can keep
//     doing so. Source headers with a name or value that is not valid HTTP
//     are dropped rather than failing every attempt.
//     Then the destination's custom headers replace same-named source
//     headers (a custom Host sets the Host header; custom hop-by-hop or
//     Content-Length headers are ignored). Last come our headers, which
//     nothing overrides: webhook-id (stable across retries and replays),
//     webhook-timestamp (unix seconds from the injected clock),
//     webhook-signature (only when the destination has a signing secret),
//     X-Webhookops-Attempt and, for a replay, X-Webhookops-Replay-Id.
//     User-Agent is the destination's custom one if set, else
//     Options.UserAgent, else DefaultUserAgent.
//   - The outcome of an attempt (Result): any 2xx is success; any other
//     status, a timeout (the destination's timeout covers the whole attempt,
//     connect to last byte read) or a connection error is a failure. 429 and
//     503 carry Retry-After. At most ResponseExcerptLimit bytes of the
//     response are kept, and at most drainLimit more are read and discarded so
//     the connection can be reused.
//   - The SSRF guard. In mode "http", every TCP connection is checked at
//     connect time, after DNS resolution, on the exact address the socket
//     connects to (net.Dialer.Control), so a DNS answer that changes between
//     check and use cannot slip an internal address through. Loopback,
//     private (RFC 1918, fc00::/7), link-local, unspecified, multicast,
//     CGNAT (100.64.0.0/10), reserved ranges and NAT64 or IPv4-mapped forms
//     of any of these are refused unless the destination sets
//     allow_private_network. Cloud metadata and credential endpoints
//     (169.254.169.254, fd00:ec2::254, ...) are refused even then: no webhook
//     receiver lives there, and they hold the host's cloud credentials.
//     Environment proxies (HTTP_PROXY) are never used, so nothing routes
//     around the guard. In mode "agent" the connection is made by
//     Options.AgentDial through the agent's tunnel and the agent's allow-list
//     governs instead.
//   - Per (verify_tls, allow_private_network, agent) combination, cached for
//     the life of the Client: for https and agent destinations an
//     http.Transport (TLS, HTTP/2 where offered), and for plain-http
//     destinations in mode "http", on Linux, a pool of HTTP/1.1 keep-alive
//     connections (h1Pool; elsewhere the Transport too: see idleProbes) on which each attempt runs wholly on its caller's goroutine,
//     without the Transport's reader and writer goroutines per connection
//     (they were about a third of a delivery's CPU under steady load). Either
//     way steady delivery to a destination reuses its connections; both cap
//     idle connections alike (1,024, 64 per host, 90 s), bound a response
//     header to 64 KiB and skip 1xx answers. Neither sends a request on an
//     idle connection the receiver closed or sent unasked bytes on (the
//     pool peeks at it when taking it): those bytes would be taken for the
//     next event's answer.
//
// # What it must never do
//
//   - Follow a redirect: a 3xx is a failed attempt carrying its status code.
//     Following one would let a receiver point us at an internal address
//     and would re-POST the body somewhere the operator never configured.
//   - Dial an address the guard has not checked (mode "http"), or use a
//     proxy from the environment.
//   - Log anything, and in particular secrets: the package has no logger.
//     Result.Err never contains the destination URL (it may carry tokens in
//     its query) nor any header value.
//   - Retry on its own. One Deliver call is one attempt; the destination
//     actor owns retries, their schedule and the dead-letter queue. The one
//     exception: a request that fails on a reused keep-alive connection the
//     server had already closed, before any byte of an answer, is re-sent
//     once on a fresh connection (net/http's rule for idempotent requests;
//     ours are marked so, since receivers dedupe on webhook-id; the pool
//     keeps the same rule), so a receiver's short keep-alive timeout does
//     not turn into spurious failed attempts.
//   - Panic, on any destination or request: a bad stored URL, an unknown
//     mode or a missing agent dialer is a failed attempt with a clear Err.
//
// Duration is measured on the monotonic wall clock; only webhook-timestamp
// and Retry-After dates use the injected Options.Now.
package delivery
