package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// DefaultUserAgent is sent when neither Options.UserAgent nor the
// destination's custom headers set one.
const DefaultUserAgent = "WebhookOps"

const (
	// ResponseExcerptLimit is how much of a response body a Result keeps.
	ResponseExcerptLimit = 4 << 10
	// drainLimit is how much more of a response is read and discarded so its
	// connection can go back to the pool; a longer body closes the connection
	// instead of stalling the attempt.
	drainLimit = 64 << 10
	// maxResponseHeaderBytes bounds what a receiver can make us buffer.
	maxResponseHeaderBytes = 64 << 10
)

// Headers that only we set. Canonical form.
const (
	hdrWebhookID        = "Webhook-Id"
	hdrWebhookTimestamp = "Webhook-Timestamp"
	hdrWebhookSignature = "Webhook-Signature"
	hdrAttempt          = "X-Webhookops-Attempt"
	hdrReplayID         = "X-Webhookops-Replay-Id"
	hdrUserAgent        = "User-Agent"
	hdrIdempotencyKey   = "Idempotency-Key"
)

// Errors an attempt can fail with before anything is sent. Result.Err carries
// their text.
var (
	ErrBadURL        = errors.New("delivery: destination url is not an absolute http(s) URL")
	ErrURLUserinfo   = errors.New("delivery: credentials in the destination url are not allowed; use headers")
	ErrNoAgentDialer = errors.New("delivery: destination uses mode agent but no agent dialer is configured")
	ErrNoAgent       = errors.New("delivery: destination uses mode agent but names no agent")
)

// Request is one attempt to deliver one event.
type Request struct {
	// EventID is sent as webhook-id; it is stable across retries and
	// replays of one event, so a receiver can dedupe on it.
	EventID string
	// Attempt is 1-based and sent as X-Webhookops-Attempt.
	Attempt int
	// Headers are the source request's headers as received, in order.
	Headers [][2]string
	// Body is the raw body, sent byte-exact.
	Body []byte
	// ReplayID, when set, is sent as X-Webhookops-Replay-Id.
	ReplayID string
}

// Result is the outcome of one attempt.
type Result struct {
	Success    bool          // the receiver answered 2xx
	StatusCode int           // 0 when there was no response
	Duration   time.Duration // from the start of Deliver to the last byte read
	Response   []byte        // at most ResponseExcerptLimit bytes of the response body
	// Err says why there was no response: a connection error, a timeout, an
	// SSRF refusal, a bad destination. It is "" whenever StatusCode is set.
	Err string
	// RetryAfter is the receiver's Retry-After on a 429 or 503 (seconds or
	// HTTP-date), 0 if none or for any other status.
	RetryAfter time.Duration
}

// Options configures a Client. The zero value is usable.
type Options struct {
	// Now is the clock for webhook-timestamp and Retry-After dates; nil
	// means time.Now.
	Now func() time.Time
	// AgentDial opens a connection to addr (host:port) through agent
	// agentID's tunnel, for destinations in mode "agent". It must honour
	// ctx. nil makes every agent destination fail with ErrNoAgentDialer.
	AgentDial func(ctx context.Context, agentID, addr string) (net.Conn, error)
	// Resolver resolves destination host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// UserAgent is sent as User-Agent; "" means DefaultUserAgent.
	UserAgent string
}

// Client makes delivery attempts. It is safe for concurrent use; keep one
// per process so connections are pooled across destination actors.
type Client struct {
	opts Options

	mu         sync.Mutex // guards the fields below
	transports map[transportKey]*http.Transport
	pools      map[transportKey]*h1Pool // plain-http destinations in mode http
}

// transportKey is what makes two destinations need different transports.
type transportKey struct {
	verifyTLS    bool
	allowPrivate bool   // mode http only
	agent        string // "" for mode http
}

// NewClient returns a Client with opts.
func NewClient(opts Options) *Client {
	return &Client{opts: opts}
}

// CloseIdle closes every idle pooled connection. Connections in use are
// left alone and go away when their attempt ends.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
	for _, p := range c.pools {
		p.closeIdle()
	}
}

func (c *Client) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

// Deliver makes one attempt to deliver r to d and reports what happened. It
// never follows redirects and never retries (see the package doc). d's zero
// fields take their defaults.
func (c *Client) Deliver(ctx context.Context, d model.Destination, r Request) Result {
	start := time.Now()
	res := c.deliver(ctx, start, d.WithDefaults(), r)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) deliver(ctx context.Context, start time.Time, d model.Destination, r Request) Result {
	if ctx == nil {
		ctx = context.Background()
	}
	timeout := d.Timeout.D()
	if timeout <= 0 {
		timeout = model.DefaultTimeout
	}
	// The attempt's deadline. A pooled plain-http attempt puts it on its
	// connection and watches ctx for cancellation; only the Transport gets
	// a context of its own, whose timer and registration with its parent
	// were a few percent of a delivery's CPU.
	deadline := start.Add(timeout)
	if pd, ok := ctx.Deadline(); ok && pd.Before(deadline) {
		deadline = pd
	}

	u, err := url.Parse(d.URL)
	if err != nil {
		// The parse error quotes the URL, which may carry a token.
		return Result{Err: ErrBadURL.Error()}
	}
	u.Host = strings.TrimSuffix(u.Host, ":") // an empty port is the default one
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return Result{Err: ErrBadURL.Error()}
	}
	if u.User != nil {
		return Result{Err: ErrURLUserinfo.Error()}
	}

	header, host := c.buildHeader(d, r)
	if host == "" {
		host = u.Host
	}
	// A Host that needs net/http's cleaning (a name to turn into punycode,
	// say) goes through the Transport, and so does a URL host the
	// Transport would dial by its punycode form.
	tr, pool, err := c.transportFor(d, idleProbes && u.Scheme == "http" && plainHost(host) && plainHost(u.Host))
	if err != nil {
		return Result{Err: err.Error()}
	}
	if d.Mode == model.ModeHTTP {
		// Refuse an address literal before touching the network; the dial
		// guard would refuse it too, this only makes the error immediate.
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			if err := checkAddr(a, d.AllowPrivateNetwork); err != nil {
				return Result{Err: err.Error()}
			}
		}
	}

	var resp *http.Response
	if pool != nil {
		port := u.Port()
		if port == "" {
			port = "80"
		}
		out := outgoing{target: u.RequestURI(), host: host, header: header, body: r.Body}
		resp, err = pool.roundTrip(ctx, deadline, &out, net.JoinHostPort(u.Hostname(), port))
	} else {
		tctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		req, rerr := http.NewRequestWithContext(tctx, http.MethodPost, u.String(), bytes.NewReader(r.Body))
		if rerr != nil {
			return Result{Err: ErrBadURL.Error()}
		}
		req.Header, req.Host = header, host
		resp, err = tr.RoundTrip(req)
		ctx = tctx // for describeError
		if err == nil {
			if err = checkStatus(resp.StatusCode); err != nil {
				resp.Body.Close()
			}
		}
	}
	if err != nil {
		return Result{Err: describeError(ctx, err, start, timeout)}
	}
	res := Result{
		StatusCode: resp.StatusCode,
		Success:    resp.StatusCode >= 200 && resp.StatusCode <= 299,
	}
	if hasRetryAfter(resp.StatusCode) {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	res.Response = readExcerpt(resp.Body)
	resp.Body.Close()
	return res
}

// checkStatus refuses a status code below 100, which http.ReadResponse
// accepts ("HTTP/1.1 000 x"): the attempt would carry neither a status nor
// an error.
func checkStatus(code int) error {
	if code < 100 {
		return fmt.Errorf("malformed HTTP response: status code %03d", code)
	}
	return nil
}

// describeError turns a round-trip error into the attempt's Err text.
func describeError(ctx context.Context, err error, start time.Time, timeout time.Duration) string {
	var be *blockedError
	if errors.As(err, &be) {
		return be.Error()
	}
	// A plain-http attempt's connection carries the attempt's deadline,
	// which can fire a moment before the context's own timer.
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || (ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded)) {
		return fmt.Sprintf("timed out after %v (timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return "canceled before a response: " + err.Error()
	}
	return err.Error()
}

var excerptPool = sync.Pool{New: func() any { return new([ResponseExcerptLimit]byte) }}

// readExcerpt returns up to ResponseExcerptLimit bytes of body and drains a
// bounded amount more so the connection can be reused.
func readExcerpt(body io.Reader) []byte {
	buf := excerptPool.Get().(*[ResponseExcerptLimit]byte)
	defer excerptPool.Put(buf)
	n, _ := io.ReadFull(body, buf[:])
	var out []byte
	if n > 0 {
		out = bytes.Clone(buf[:n])
	}
	if n == len(buf) {
		io.CopyN(io.Discard, body, drainLimit)
	}
	return out
}

// transportFor returns the cached transport for d's combination of TLS
// verification, private-network permission and agent, making it on first
// use; for a plain-http destination in mode http (plain), the pool of that
// combination instead (h1Pool), and a nil transport.
func (c *Client) transportFor(d model.Destination, plain bool) (*http.Transport, *h1Pool, error) {
	k := transportKey{verifyTLS: d.TLSVerify()}
	switch d.Mode {
	case model.ModeHTTP:
		k.allowPrivate = d.AllowPrivateNetwork
	case model.ModeAgent:
		if c.opts.AgentDial == nil {
			return nil, nil, ErrNoAgentDialer
		}
		if d.Agent == "" {
			return nil, nil, ErrNoAgent
		}
		k.agent = d.Agent
		plain = false
	default:
		return nil, nil, fmt.Errorf("delivery: unknown destination mode %q (http or agent)", d.Mode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if plain {
		p := c.pools[k]
		if p == nil {
			if c.pools == nil {
				c.pools = make(map[transportKey]*h1Pool)
			}
			p = newH1Pool(c.newDialer(k))
			c.pools[k] = p
		}
		return nil, p, nil
	}
	if t := c.transports[k]; t != nil {
		return t, nil, nil
	}
	if c.transports == nil {
		c.transports = make(map[transportKey]*http.Transport)
	}
	t := c.newTransport(k)
	c.transports[k] = t
	return t, nil, nil
}

func (c *Client) newTransport(k transportKey) *http.Transport {
	t := &http.Transport{
		// Never a proxy from the environment: it would route around the
		// SSRF guard.
		Proxy: nil,
		TLSClientConfig: &tls.Config{
			// Per destination, off only when the operator says verify_tls: false.
			InsecureSkipVerify: !k.verifyTLS, //nolint:gosec // operator's explicit choice
			MinVersion:         tls.VersionTLS12,
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           h1MaxIdle,
		MaxIdleConnsPerHost:    h1MaxIdlePerHost,
		IdleConnTimeout:        h1IdleTimeout,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// The excerpt is stored as received; asking for gzip would only
		// make it unreadable or cost a decompression.
		DisableCompression: true,
	}
	if k.agent != "" {
		agent, dial := k.agent, c.opts.AgentDial
		t.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			conn, err := dial(ctx, agent, addr)
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", agent, err)
			}
			if conn == nil {
				return nil, fmt.Errorf("agent %s: dialer returned no connection", agent)
			}
			return conn, nil
		}
		return t
	}
	t.DialContext = c.newDialer(k).DialContext
	return t
}

// newDialer is the guarded dialer of mode http: every address it connects
// to is checked (guardControl).
func (c *Client) newDialer(k transportKey) *net.Dialer {
	return &net.Dialer{
		Timeout:   30 * time.Second, // the attempt's context is usually shorter
		KeepAlive: 30 * time.Second,
		Resolver:  c.opts.Resolver,
		Control:   guardControl(k.allowPrivate),
	}
}

// buildHeader returns the request's headers: filtered source headers, then
// the destination's custom headers, then ours (see the package doc); and
// the destination's custom Host, if it sets one.
func (c *Client) buildHeader(d model.Destination, r Request) (h http.Header, host string) {
	const ours = 6 // the most headers we add
	h = make(http.Header, len(r.Headers)+len(d.Headers)+ours)
	// One backing array for the values: each header gets a capacity-capped
	// window of it, so a repeated header's append copies out instead of
	// overwriting its neighbour.
	vals := make([]string, 0, len(r.Headers)+len(d.Headers)+ours)
	one := func(v string) []string {
		vals = append(vals, v)
		n := len(vals)
		return vals[n-1 : n : n]
	}

	// Headers named in Connection are hop-by-hop too.
	var connTokens []string
	for _, kv := range r.Headers {
		if strings.EqualFold(kv[0], "Connection") {
			connTokens = appendTokens(connTokens, kv[1])
		}
	}
	for _, kv := range r.Headers {
		name, value := kv[0], kv[1]
		if !validHeaderName(name) || !validHeaderValue(value) {
			continue
		}
		key := http.CanonicalHeaderKey(name)
		if dropSourceHeader(key) || containsFold(connTokens, key) {
			continue
		}
		if prev, ok := h[key]; ok {
			h[key] = append(prev, value)
		} else {
			h[key] = one(value)
		}
	}

	for _, name := range sortedKeys(d.Headers) {
		value := d.Headers[name]
		if !validHeaderName(name) || !validHeaderValue(value) {
			continue
		}
		key := http.CanonicalHeaderKey(name)
		switch {
		case key == "Host":
			host = value
		case isHopByHop(key), key == "Content-Length", ourHeader(key) && key != hdrUserAgent:
		default:
			h[key] = one(value)
		}
	}

	now := c.now()
	h[hdrWebhookID] = one(r.EventID)
	h[hdrWebhookTimestamp] = one(strconv.FormatInt(now.Unix(), 10))
	if d.SigningSecret != "" {
		sig := Sign(d.SigningSecret, r.EventID, now, r.Body)
		if d.PreviousSigningSecret != "" && now.Before(d.PreviousSecretExpiresAt) {
			// Standard Webhooks: several signatures, space-separated; a
			// receiver still on the old secret finds its own.
			sig += " " + Sign(d.PreviousSigningSecret, r.EventID, now, r.Body)
		}
		h[hdrWebhookSignature] = one(sig)
	}
	h[hdrAttempt] = one(strconv.Itoa(r.Attempt))
	if r.ReplayID != "" {
		h[hdrReplayID] = one(r.ReplayID)
	}
	if _, ok := h[hdrUserAgent]; !ok {
		ua := c.opts.UserAgent
		if ua == "" {
			ua = DefaultUserAgent
		}
		h[hdrUserAgent] = one(ua)
	}
	if _, ok := h[hdrIdempotencyKey]; !ok {
		// A nil value marks the POST idempotent for net/http, which then
		// re-sends it on a fresh connection when a reused keep-alive
		// connection turns out dead, without sending the header.
		h[hdrIdempotencyKey] = nil
	}
	return h, host
}
