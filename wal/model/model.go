package model

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as Go duration text
// ("15s", "1h") in JSON and YAML, so the config file and the API share one
// spelling.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as Go duration text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses Go duration text ("15s"); a bare number is rejected
// because it hides its unit.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a unit, e.g. 15s, 5m, 1h)", string(b))
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts only a JSON string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid duration %s (use a string with a unit, e.g. \"15s\")", string(b))
	}
	return d.UnmarshalText([]byte(s))
}

// Provider names the sender a source verifies: it picks the signature
// scheme and where the idempotency key and event type come from.
type Provider string

// Providers a source may name.
const (
	ProviderGeneric Provider = "generic"
	ProviderGitHub  Provider = "github"
	ProviderShopify Provider = "shopify"
	ProviderSlack   Provider = "slack"
	ProviderStripe  Provider = "stripe"
	// ProviderStandardWebhooks is any sender of Standard Webhooks
	// (webhook-id, webhook-timestamp, webhook-signature). A generic source
	// verifies only the plain HMAC scheme: one scheme per source, so a
	// captured request of one scheme is never checked as the other.
	ProviderStandardWebhooks Provider = "standard-webhooks"
)

// Providers lists every provider, in the order error messages name them.
var Providers = []Provider{ProviderGeneric, ProviderGitHub, ProviderShopify, ProviderSlack, ProviderStripe, ProviderStandardWebhooks}

// providerList is Providers for error messages.
const providerList = "generic, github, shopify, slack, stripe or standard-webhooks"

func (p Provider) String() string { return string(p) }

// Valid reports whether p is a known provider.
func (p Provider) Valid() bool { return slices.Contains(Providers, p) }

// Ordering is a destination's ordering mode.
type Ordering string

// Ordering modes of a destination; "" means the default, ordered.
const (
	OrderingOrdered  Ordering = "ordered"
	OrderingParallel Ordering = "parallel"
)

func (o Ordering) String() string { return string(o) }

// Mode is how a destination is reached.
type Mode string

// Delivery modes of a destination; "" means the default, http.
const (
	ModeHTTP  Mode = "http"
	ModeAgent Mode = "agent"
)

func (m Mode) String() string { return string(m) }

// Verify says whether a source checks signatures.
type Verify string

// Verification settings of a source.
const (
	// VerifySignature (the zero value) checks every request's signature.
	VerifySignature Verify = ""
	// VerifyNone accepts unsigned requests; it must be asked for by name.
	VerifyNone Verify = "none"
)

func (v Verify) String() string {
	if v == VerifySignature {
		return "signature"
	}
	return string(v)
}

// Source is where webhooks come in: POST /in/{slug}.
type Source struct {
	Slug     string   `json:"slug" yaml:"slug"`
	Provider Provider `json:"provider" yaml:"provider"`
	Secrets  []string `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	// Verify is "" (verify signatures) or "none", the only way to accept
	// unsigned requests.
	Verify Verify `json:"verify,omitempty" yaml:"verify,omitempty"`
	// Dedupe is what makes two requests one event (see Dedupe).
	Dedupe   Dedupe  `json:"dedupe,omitempty" yaml:"dedupe,omitempty"`
	Disabled bool    `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	Routes   []Route `json:"routes,omitempty" yaml:"routes,omitempty"`
}

// Dedupe says what makes two requests to a source one event.
type Dedupe string

// Dedupe settings of a source.
const (
	// DedupeDefault is the provider's default: "body" for github and
	// shopify, "id" for the others.
	DedupeDefault Dedupe = ""
	// DedupeID dedupes on the provider's event or delivery id.
	DedupeID Dedupe = "id"
	// DedupeBody dedupes on SHA-256 of the event type and the body. For
	// providers whose id header the signature does not cover (github,
	// shopify, generic), a captured signed request sent again with a new
	// id is then still a duplicate.
	DedupeBody Dedupe = "body"
)

func (d Dedupe) String() string {
	if d == DedupeDefault {
		return "default"
	}
	return string(d)
}

// DedupesOnBody reports whether the source's idempotency key is the hash
// of the event type and body rather than the provider's id.
func (s Source) DedupesOnBody() bool {
	switch s.Dedupe {
	case DedupeBody:
		return true
	case DedupeID:
		return false
	}
	return s.Provider == ProviderGitHub || s.Provider == ProviderShopify
}

// Route sends a source's events, optionally filtered by type, to a destination.
type Route struct {
	Destination string   `json:"destination" yaml:"destination"`
	EventTypes  []string `json:"event_types,omitempty" yaml:"event_types,omitempty"`
}

// Matches reports whether the route selects an event of eventType (see
// [MatchEventType]).
func (r Route) Matches(eventType string) bool { return MatchEventType(r.EventTypes, eventType) }

// Targets returns the destinations an event of eventType from s goes to,
// each once, in route order.
func (s Source) Targets(eventType string) []string {
	var out []string
	for _, r := range s.Routes {
		if r.Matches(eventType) && !slices.Contains(out, r.Destination) {
			out = append(out, r.Destination)
		}
	}
	return out
}

// MatchEventType reports whether eventType is selected by patterns, a route's
// event_types:
//   - no patterns select every event, including those without a type;
//   - "*" selects every event;
//   - a pattern ending in ".*" selects the type before the dot and every type
//     that continues with the dot: "issues.*" selects "issues",
//     "issues.opened" and "issues.labeled.x", but not "issuesx". A pattern
//     ending in "/*" does the same with "/", for Shopify-style topics
//     ("orders/*" selects "orders/create");
//   - any other pattern selects exactly that type, case-sensitively; "*"
//     anywhere else is an ordinary character.
func MatchEventType(patterns []string, eventType string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if matchPattern(p, eventType) {
			return true
		}
	}
	return false
}

func matchPattern(p, t string) bool {
	if p == "*" {
		return true
	}
	if n := len(p); n >= 2 && p[n-1] == '*' && (p[n-2] == '.' || p[n-2] == '/') {
		return t == p[:n-2] || strings.HasPrefix(t, p[:n-1])
	}
	return p == t
}

// Destination is where events go: a URL, reached directly or through an agent.
type Destination struct {
	Slug        string   `json:"slug" yaml:"slug"`
	URL         string   `json:"url" yaml:"url"`
	Mode        Mode     `json:"mode,omitempty" yaml:"mode,omitempty"`   // http (default) | agent
	Agent       string   `json:"agent,omitempty" yaml:"agent,omitempty"` // agent id when mode is agent
	Ordering    Ordering `json:"ordering,omitempty" yaml:"ordering,omitempty"`
	MaxInFlight int      `json:"max_in_flight,omitempty" yaml:"max_in_flight,omitempty"`
	Timeout     Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	MaxAttempts int      `json:"max_attempts,omitempty" yaml:"max_attempts,omitempty"`
	BackoffBase Duration `json:"backoff_base,omitempty" yaml:"backoff_base,omitempty"`
	BackoffMax  Duration `json:"backoff_max,omitempty" yaml:"backoff_max,omitempty"`
	// VerifyTLS is nil for the default (true).
	VerifyTLS *bool             `json:"verify_tls,omitempty" yaml:"verify_tls,omitempty"`
	Headers   map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	// SecretHeaders names more headers whose values are credentials,
	// beside those that are by their name (see IsSecretHeader): sealed at
	// rest, masked in reads and audit diffs.
	SecretHeaders []string `json:"secret_headers,omitempty" yaml:"secret_headers,omitempty"`
	SigningSecret string   `json:"signing_secret,omitempty" yaml:"signing_secret,omitempty"`
	// PreviousSigningSecret also signs deliveries, beside SigningSecret,
	// until PreviousSecretExpiresAt: rotation sets both, so receivers can
	// switch secrets without rejecting a delivery. Never set by hand.
	PreviousSigningSecret   string    `json:"previous_signing_secret,omitempty" yaml:"-"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero" yaml:"-"`
	AllowPrivateNetwork     bool      `json:"allow_private_network,omitempty" yaml:"allow_private_network,omitempty"`
	// RateLimit caps attempts per second; 0 means no limit.
	RateLimit float64 `json:"rate_limit,omitempty" yaml:"rate_limit,omitempty"`
	Paused    bool    `json:"paused,omitempty" yaml:"paused,omitempty"`
}

// Agent is a private network agent (agentd) allowed to dial in.
type Agent struct {
	ID             string   `json:"id" yaml:"id"`
	AllowedTargets []string `json:"allowed_targets,omitempty" yaml:"allowed_targets,omitempty"`
	// Secret is set only by enrollment; config files never carry it.
	Secret string `json:"-" yaml:"-"`
}

// Forward is a raw TCP forward: connections accepted on Listen go through
// Agent to Target.
type Forward struct {
	Listen string `json:"listen" yaml:"listen"`
	Agent  string `json:"agent" yaml:"agent"`
	Target string `json:"target" yaml:"target"`
	// Public allows Listen beyond loopback (0.0.0.0, a LAN address, an
	// empty host): anyone who reaches it reaches Target. Without it, only
	// 127.0.0.0/8, ::1 and localhost are accepted.
	Public bool `json:"public,omitempty" yaml:"public,omitempty"`
}

// Defaults applied where a destination leaves a field zero.
const (
	DefaultTimeout     = 15 * time.Second
	DefaultMaxAttempts = 8
	DefaultBackoffBase = 5 * time.Second
	DefaultBackoffMax  = time.Hour
	DefaultMaxInFlight = 1
)

// WithDefaults returns d with every zero field set to its default.
func (d Destination) WithDefaults() Destination {
	if d.Mode == "" {
		d.Mode = ModeHTTP
	}
	if d.Ordering == "" {
		d.Ordering = OrderingOrdered
	}
	if d.MaxInFlight == 0 {
		d.MaxInFlight = DefaultMaxInFlight
	}
	if d.Ordering == OrderingOrdered {
		d.MaxInFlight = 1
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(DefaultTimeout)
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.BackoffBase == 0 {
		d.BackoffBase = Duration(DefaultBackoffBase)
	}
	if d.BackoffMax == 0 {
		d.BackoffMax = Duration(DefaultBackoffMax)
	}
	return d
}

// TLSVerify reports whether the destination's TLS certificate is verified.
func (d Destination) TLSVerify() bool { return d.VerifyTLS == nil || *d.VerifyTLS }

// FieldError names the field a validation failed on.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidSlug reports whether s is a valid slug: lower-case letters, digits,
// '-' and '_', starting with a letter or digit, at most 63 characters.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// Validate checks a source on its own; route targets are checked by the
// caller, which knows the destinations.
func (s Source) Validate() error {
	if !ValidSlug(s.Slug) {
		return fieldErr("slug", "%q is not a valid slug (a-z, 0-9, '-', '_', at most 63)", s.Slug)
	}
	switch {
	case s.Provider.Valid():
	case s.Provider == "":
		return fieldErr("provider", "required ("+providerList+")")
	default:
		return fieldErr("provider", "unknown provider %q ("+providerList+")", s.Provider)
	}
	switch s.Dedupe {
	case DedupeDefault, DedupeID, DedupeBody:
	default:
		return fieldErr("dedupe", "must be empty, \"id\" or \"body\", got %q", s.Dedupe)
	}
	switch s.Verify {
	case VerifySignature:
		if len(s.Secrets) == 0 {
			return fieldErr("secrets", "at least one secret is required unless verify is \"none\"")
		}
	case VerifyNone:
	default:
		return fieldErr("verify", "must be empty or \"none\", got %q", s.Verify)
	}
	for i, sec := range s.Secrets {
		if sec == "" {
			return fieldErr(fmt.Sprintf("secrets[%d]", i), "must not be empty")
		}
	}
	for i, r := range s.Routes {
		if !ValidSlug(r.Destination) {
			return fieldErr(fmt.Sprintf("routes[%d].destination", i), "%q is not a valid destination slug", r.Destination)
		}
		for j, p := range r.EventTypes {
			if strings.TrimSpace(p) == "" {
				return fieldErr(fmt.Sprintf("routes[%d].event_types[%d]", i, j), "must not be empty")
			}
		}
	}
	return nil
}

// Validate checks a destination (before defaults are applied).
func (d Destination) Validate() error {
	if !ValidSlug(d.Slug) {
		return fieldErr("slug", "%q is not a valid slug (a-z, 0-9, '-', '_', at most 63)", d.Slug)
	}
	u, err := url.Parse(d.URL)
	if d.URL == "" {
		return fieldErr("url", "required")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr("url", "%q is not an absolute http(s) URL", d.URL)
	}
	if u.User != nil {
		return fieldErr("url", "credentials in the URL are not allowed; use headers")
	}
	if slices.ContainsFunc(queryParts(d.URL), maskedPart) {
		return fieldErr("url", "a query value is the mask %q, not a value (there is none to keep); send the real value", Masked)
	}
	switch d.Mode {
	case "", ModeHTTP:
		if d.Agent != "" {
			return fieldErr("agent", "only allowed with mode: agent")
		}
	case ModeAgent:
		if !ValidSlug(d.Agent) {
			return fieldErr("agent", "mode agent needs a valid agent id, got %q", d.Agent)
		}
	default:
		return fieldErr("mode", "must be http or agent, got %q", d.Mode)
	}
	switch d.Ordering {
	case "", OrderingOrdered, OrderingParallel:
	default:
		return fieldErr("ordering", "must be ordered or parallel, got %q", d.Ordering)
	}
	if d.MaxInFlight < 0 || d.MaxInFlight > 1024 {
		return fieldErr("max_in_flight", "must be between 1 and 1024")
	}
	if d.MaxInFlight > 1 && d.Ordering != OrderingParallel {
		return fieldErr("max_in_flight", "only parallel destinations may have more than one in flight")
	}
	if d.Timeout < 0 || (d.Timeout != 0 && d.Timeout.D() < time.Millisecond) || d.Timeout.D() > 10*time.Minute {
		return fieldErr("timeout", "must be between 1ms and 10m")
	}
	if d.MaxAttempts < 0 || d.MaxAttempts > 100 {
		return fieldErr("max_attempts", "must be between 1 and 100")
	}
	if d.BackoffBase < 0 {
		return fieldErr("backoff_base", "must not be negative")
	}
	if d.BackoffMax < 0 || d.BackoffMax.D() > 24*time.Hour {
		return fieldErr("backoff_max", "must be between 0 and 24h")
	}
	if eff := d.WithDefaults(); eff.BackoffBase > eff.BackoffMax {
		field := "backoff_base"
		if d.BackoffBase == 0 {
			field = "backoff_max"
		}
		return fieldErr(field, "backoff_base (%v) must not exceed backoff_max (%v)", eff.BackoffBase, eff.BackoffMax)
	}
	if d.RateLimit < 0 {
		return fieldErr("rate_limit", "must not be negative")
	}
	for k := range d.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n\t") {
			return fieldErr("headers", "invalid header name %q", k)
		}
		if strings.ContainsAny(d.Headers[k], "\r\n") {
			return fieldErr("headers", "header %q has a line break in its value", k)
		}
		if d.IsSecretHeader(k) && d.Headers[k] == Masked {
			return fieldErr("headers", "header %q is the mask %q, not a value", k, Masked)
		}
	}
	for i, k := range d.SecretHeaders {
		if k == "" || strings.ContainsAny(k, " :\r\n\t") {
			return fieldErr(fmt.Sprintf("secret_headers[%d]", i), "invalid header name %q", k)
		}
	}
	return nil
}

// Masked is what reads and audit diffs show for a credential in a
// destination's headers or URL query.
const Masked = "****"

// credentialWords mark a header name as a credential's: any name holding
// one of them (Authorization, X-Api-Key, X-Auth-Token, Cookie, ...).
var credentialWords = []string{"auth", "token", "secret", "password", "passwd", "key", "cookie", "credential", "session", "signature"}

// IsSecretHeader reports whether header name (any case) of d holds a
// credential: its name says so, or SecretHeaders lists it.
func (d Destination) IsSecretHeader(name string) bool {
	lower := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	for _, h := range d.SecretHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// MaskCredentials returns d as reads and audit diffs show it: secret
// header values and every URL query value replaced by Masked. (Signing
// secrets are masked by their owner, which shows them once.)
func (d Destination) MaskCredentials() Destination {
	if len(d.Headers) > 0 {
		h := make(map[string]string, len(d.Headers))
		for k, v := range d.Headers {
			if d.IsSecretHeader(k) {
				v = Masked
			}
			h[k] = v
		}
		d.Headers = h
	}
	d.URL = MaskURL(d.URL)
	return d
}

// MaskURL replaces every query value of a URL by Masked (tokens travel
// there), keeping the names; userinfo is never allowed in a destination.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery == "" {
		return raw
	}
	parts := strings.Split(u.RawQuery, "&")
	for i, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		parts[i] = name + "=" + Masked
	}
	u.RawQuery = strings.Join(parts, "&")
	return u.String()
}

// KeepMaskedCredentials returns d with the credentials a client sent back
// masked (as a read showed them) replaced by cur's, so PUT of what GET
// showed changes nothing it could not see.
func (d Destination) KeepMaskedCredentials(cur Destination) Destination {
	if len(d.Headers) > 0 {
		h := make(map[string]string, len(d.Headers))
		for k, v := range d.Headers {
			if v == Masked && d.IsSecretHeader(k) {
				if old, ok := lookupFold(cur.Headers, k); ok {
					v = old
				}
			}
			h[k] = v
		}
		d.Headers = h
	}
	d.URL = keepMaskedQuery(d.URL, cur.URL)
	return d
}

// SplitQuery cuts a URL into what precedes its query, the query (without
// "?") and the fragment (with "#"), byte for byte, so the URL put back
// together is the one given.
func SplitQuery(raw string) (base, query, frag string) {
	rest := raw
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest, frag = rest[:i], rest[i:]
	}
	base, query, _ = strings.Cut(rest, "?")
	return base, query, frag
}

// queryParts are a URL's query parts (name=value, as written).
func queryParts(raw string) []string {
	if _, q, _ := SplitQuery(raw); q != "" {
		return strings.Split(q, "&")
	}
	return nil
}

// keepMaskedQuery puts cur's value back in place of every query value of
// raw that is the mask: the n-th value of a name takes the n-th value of
// that name in cur. The rest of raw (path, other values) is kept as sent,
// so a client may edit them around a masked token. A mask with nothing
// behind it stays, for Validate to refuse.
func keepMaskedQuery(raw, cur string) string {
	parts := queryParts(raw)
	if !slices.ContainsFunc(parts, maskedPart) {
		return raw
	}
	curParts := queryParts(cur)
	seen := map[string]int{}
	for i, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		n := seen[name]
		seen[name]++
		if !maskedPart(p) {
			continue
		}
		for _, c := range curParts {
			if cn, _, _ := strings.Cut(c, "="); cn == name {
				if n == 0 {
					parts[i] = c
					break
				}
				n--
			}
		}
	}
	base, _, frag := SplitQuery(raw)
	return base + "?" + strings.Join(parts, "&") + frag
}

// maskedPart reports whether a query part's value is the mask.
func maskedPart(p string) bool {
	_, v, _ := strings.Cut(p, "=")
	return v == Masked
}

func lookupFold(m map[string]string, name string) (string, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Validate checks an agent.
func (a Agent) Validate() error {
	if !ValidSlug(a.ID) {
		return fieldErr("id", "%q is not a valid agent id (a-z, 0-9, '-', '_', at most 63)", a.ID)
	}
	for i, t := range a.AllowedTargets {
		if err := validHostPort(t); err != nil {
			return fieldErr(fmt.Sprintf("allowed_targets[%d]", i), "%v", err)
		}
	}
	return nil
}

// Validate checks a forward.
func (f Forward) Validate() error {
	if err := validHostPort(f.Listen); err != nil {
		return fieldErr("listen", "%v", err)
	}
	if !f.Public && !loopbackHost(f.Listen[:strings.LastIndexByte(f.Listen, ':')]) {
		return fieldErr("listen", "%q listens beyond loopback, so any host that reaches it reaches the target; use 127.0.0.1, or set public: true to mean it", f.Listen)
	}
	if !ValidSlug(f.Agent) {
		return fieldErr("agent", "%q is not a valid agent id", f.Agent)
	}
	if err := validHostPort(f.Target); err != nil {
		return fieldErr("target", "%v", err)
	}
	return nil
}

// loopbackHost reports whether host (as in host:port, brackets allowed)
// names only this machine.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// AgentTarget is the host:port an agent-mode destination's URL dials
// through its agent (the scheme's port when the URL names none), the form
// an agent's allowed_targets lists.
func (d Destination) AgentTarget() (string, error) {
	u, err := url.Parse(d.URL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("%q has no host", d.URL)
	}
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		default:
			return "", fmt.Errorf("%q: scheme must be http or https", d.URL)
		}
	}
	// As net.JoinHostPort: the model links no networking (the destination
	// state machine, which imports it, must not be able to do I/O).
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port, nil
}

func validHostPort(s string) error {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return fmt.Errorf("%q is not host:port", s)
	}
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%q has a non-numeric port", s)
		}
	}
	return nil
}
