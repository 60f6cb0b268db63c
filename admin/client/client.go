// Package client is a typed HTTP client of the admin API, for the CLI and
// for scripts written in Go. It speaks the shapes package admin/api defines and
// turns every failure into an *Error that says what to do: the server is
// unreachable, the token is refused, a field is invalid.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"
)

// DefaultServer is where the CLI looks for the admin API.
const DefaultServer = "http://127.0.0.1:8081"

// Error kinds, for exit codes.
const (
	KindConnection = "connection" // the server could not be reached
	KindAuth       = "auth"       // 401 or 403
	KindInvalid    = "invalid"    // 400: the request was refused, nothing changed
	KindNotFound   = "not_found"  // 404
	KindConflict   = "conflict"   // 409
	KindServer     = "server"     // 5xx or an answer that does not decode
)

// Error is a failed call.
type Error struct {
	Kind   string
	Status int    // HTTP status, 0 when there was no answer
	Code   string // the API's error code
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return e.Msg
}

// Client calls one server.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the API at server (e.g. http://127.0.0.1:8081).
func New(server, token string) (*Client, error) {
	if server == "" {
		server = DefaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("--server %q is not an http(s) URL", server)}
	}
	return &Client{base: u, token: token, hc: &http.Client{Timeout: 60 * time.Second}}, nil
}

// Server is the base URL.
func (c *Client) Server() string { return c.base.String() }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	// path comes escaped (esc); keep that form on the wire, or a '%' in
	// it would be escaped again.
	u := *c.base
	rawPath := u.EscapedPath() + path
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return &Error{Kind: KindInvalid, Msg: fmt.Sprintf("bad request path %q: %v", path, err)}
	}
	u.Path, u.RawPath = p, rawPath
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.sendError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return &Error{Kind: KindConnection, Msg: fmt.Sprintf("reading the answer from %s: %v", c.base, err)}
	}
	if resp.StatusCode >= 300 {
		return apiError(resp.StatusCode, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return &Error{Kind: KindServer, Status: resp.StatusCode, Msg: fmt.Sprintf("the answer does not decode (is %s a WebhookOps admin API?): %v", c.base, err)}
		}
	}
	return nil
}

// sendError explains a request that got no answer.
func (c *Client) sendError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := fmt.Sprintf("cannot reach the server at %s: %v", c.base, err)
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		msg = fmt.Sprintf("cannot reach the server at %s (connection refused: is `webhookops serve` running? set --server or WEBHOOKOPS_SERVER)", c.base)
	}
	return &Error{Kind: KindConnection, Msg: msg}
}

func apiError(status int, raw []byte) *Error {
	e := &Error{Status: status}
	var eb api.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
		e.Code, e.Msg, e.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
	} else {
		e.Msg = fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(string(raw)))
	}
	switch {
	case status == http.StatusUnauthorized:
		e.Kind = KindAuth
		e.Msg = "the server refused the token (" + e.Msg + "); set --token or WEBHOOKOPS_TOKEN"
	case status == http.StatusForbidden:
		e.Kind = KindAuth
	case status == http.StatusNotFound:
		e.Kind = KindNotFound
	case status == http.StatusConflict:
		e.Kind = KindConflict
	case status >= 400 && status < 500:
		e.Kind = KindInvalid
	default:
		e.Kind = KindServer
	}
	return e
}

const prefix = api.Prefix

func esc(s string) string { return url.PathEscape(s) }

// --- sources ---

func (c *Client) ListSources(ctx context.Context) ([]api.SourceOut, error) {
	var p api.Page[api.SourceOut]
	return p.Items, c.do(ctx, "GET", prefix+"/sources", nil, nil, &p)
}

func (c *Client) GetSource(ctx context.Context, slug string) (api.SourceOut, error) {
	var s api.SourceOut
	return s, c.do(ctx, "GET", prefix+"/sources/"+esc(slug), nil, nil, &s)
}

func (c *Client) CreateSource(ctx context.Context, s model.Source) (api.SourceOut, error) {
	var out api.SourceOut
	return out, c.do(ctx, "POST", prefix+"/sources", nil, s, &out)
}

func (c *Client) UpdateSource(ctx context.Context, s model.Source) (api.SourceOut, error) {
	var out api.SourceOut
	return out, c.do(ctx, "PUT", prefix+"/sources/"+esc(s.Slug), nil, s, &out)
}

func (c *Client) DeleteSource(ctx context.Context, slug string) error {
	return c.do(ctx, "DELETE", prefix+"/sources/"+esc(slug), nil, nil, nil)
}

// RotateSourceSecret adds a secret (generated when secret is "").
func (c *Client) RotateSourceSecret(ctx context.Context, slug, secret string) (api.SecretRotation, error) {
	var out api.SecretRotation
	var in any
	if secret != "" {
		in = map[string]string{"secret": secret}
	}
	return out, c.do(ctx, "POST", prefix+"/sources/"+esc(slug)+"/secrets", nil, in, &out)
}

func (c *Client) RemoveSourceSecret(ctx context.Context, slug, secretID string) (api.SourceOut, error) {
	var out api.SourceOut
	return out, c.do(ctx, "DELETE", prefix+"/sources/"+esc(slug)+"/secrets/"+esc(secretID), nil, nil, &out)
}

// --- destinations ---

func (c *Client) ListDestinations(ctx context.Context) ([]api.DestinationOut, error) {
	var p api.Page[api.DestinationOut]
	return p.Items, c.do(ctx, "GET", prefix+"/destinations", nil, nil, &p)
}

func (c *Client) GetDestination(ctx context.Context, slug string) (api.DestinationOut, error) {
	var d api.DestinationOut
	return d, c.do(ctx, "GET", prefix+"/destinations/"+esc(slug), nil, nil, &d)
}

func (c *Client) CreateDestination(ctx context.Context, d model.Destination) (api.DestinationOut, error) {
	var out api.DestinationOut
	return out, c.do(ctx, "POST", prefix+"/destinations", nil, d, &out)
}

func (c *Client) UpdateDestination(ctx context.Context, d model.Destination) (api.DestinationOut, error) {
	var out api.DestinationOut
	return out, c.do(ctx, "PUT", prefix+"/destinations/"+esc(d.Slug), nil, d, &out)
}

func (c *Client) DeleteDestination(ctx context.Context, slug string) error {
	return c.do(ctx, "DELETE", prefix+"/destinations/"+esc(slug), nil, nil, nil)
}

func (c *Client) PauseDestination(ctx context.Context, slug string) (api.DestinationOut, error) {
	var out api.DestinationOut
	return out, c.do(ctx, "POST", prefix+"/destinations/"+esc(slug)+"/pause", nil, nil, &out)
}

func (c *Client) ResumeDestination(ctx context.Context, slug string) (api.DestinationOut, error) {
	var out api.DestinationOut
	return out, c.do(ctx, "POST", prefix+"/destinations/"+esc(slug)+"/resume", nil, nil, &out)
}

func (c *Client) RotateSigningSecret(ctx context.Context, slug, secret string) (api.SecretRotation, error) {
	var out api.SecretRotation
	var in any
	if secret != "" {
		in = map[string]string{"secret": secret}
	}
	return out, c.do(ctx, "POST", prefix+"/destinations/"+esc(slug)+"/signing-secret", nil, in, &out)
}

func (c *Client) ListDeadLetters(ctx context.Context, slug, cursor string, limit int) (api.Page[api.DeadLetter], error) {
	var p api.Page[api.DeadLetter]
	return p, c.do(ctx, "GET", prefix+"/destinations/"+esc(slug)+"/dead-letters", pageQuery(nil, cursor, limit), nil, &p)
}

func (c *Client) Redrive(ctx context.Context, slug string, r api.RedriveRequest) (model.Replay, error) {
	var out model.Replay
	return out, c.do(ctx, "POST", prefix+"/destinations/"+esc(slug)+"/dead-letters/redrive", nil, r, &out)
}

// --- agents ---

func (c *Client) ListAgents(ctx context.Context) ([]api.AgentOut, error) {
	var p api.Page[api.AgentOut]
	return p.Items, c.do(ctx, "GET", prefix+"/agents", nil, nil, &p)
}

func (c *Client) GetAgent(ctx context.Context, id string) (api.AgentOut, error) {
	var a api.AgentOut
	return a, c.do(ctx, "GET", prefix+"/agents/"+esc(id), nil, nil, &a)
}

func (c *Client) CreateAgent(ctx context.Context, a model.Agent) (api.AgentOut, error) {
	var out api.AgentOut
	return out, c.do(ctx, "POST", prefix+"/agents", nil, a, &out)
}

func (c *Client) UpdateAgent(ctx context.Context, a model.Agent) (api.AgentOut, error) {
	var out api.AgentOut
	return out, c.do(ctx, "PUT", prefix+"/agents/"+esc(a.ID), nil, a, &out)
}

func (c *Client) DeleteAgent(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", prefix+"/agents/"+esc(id), nil, nil, nil)
}

func (c *Client) RotateAgentSecret(ctx context.Context, id string) (api.AgentOut, error) {
	var out api.AgentOut
	return out, c.do(ctx, "POST", prefix+"/agents/"+esc(id)+"/secret", nil, nil, &out)
}

// Enroll creates agent id or rotates its secret, and returns the agentd
// command line. allowed, when not nil, replaces the agent's allowed
// targets; nil keeps them.
func (c *Client) Enroll(ctx context.Context, id string, allowed []string) (api.Enrollment, error) {
	var out api.Enrollment
	var in any
	if allowed != nil {
		in = api.EnrollmentRequest{AllowedTargets: allowed}
	}
	return out, c.do(ctx, "POST", prefix+"/agents/"+esc(id)+"/enrollment", nil, in, &out)
}

// --- forwards ---

func (c *Client) ListForwards(ctx context.Context) ([]api.ForwardOut, error) {
	var p api.Page[api.ForwardOut]
	return p.Items, c.do(ctx, "GET", prefix+"/forwards", nil, nil, &p)
}

// GetForward reads the forward listening on listen (host:port).
func (c *Client) GetForward(ctx context.Context, listen string) (api.ForwardOut, error) {
	var f api.ForwardOut
	return f, c.do(ctx, "GET", prefix+"/forwards/"+esc(listen), nil, nil, &f)
}

func (c *Client) CreateForward(ctx context.Context, f model.Forward) (api.ForwardOut, error) {
	var out api.ForwardOut
	return out, c.do(ctx, "POST", prefix+"/forwards", nil, f, &out)
}

func (c *Client) DeleteForward(ctx context.Context, listen string) error {
	return c.do(ctx, "DELETE", prefix+"/forwards/"+esc(listen), nil, nil, nil)
}

// --- events ---

func pageQuery(q url.Values, cursor string, limit int) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// FilterQuery encodes an event filter as query parameters.
func FilterQuery(f model.EventFilter) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("source", f.Source)
	set("destination", f.Destination)
	set("status", string(f.Status))
	set("event_type", f.EventType)
	set("idempotency_key", f.IdempotencyKey)
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return q
}

func (c *Client) ListEvents(ctx context.Context, f model.EventFilter, cursor string, limit int) (api.Page[api.EventOut], error) {
	var p api.Page[api.EventOut]
	return p, c.do(ctx, "GET", prefix+"/events", pageQuery(FilterQuery(f), cursor, limit), nil, &p)
}

func (c *Client) GetEvent(ctx context.Context, id string) (api.EventOut, error) {
	var e api.EventOut
	return e, c.do(ctx, "GET", prefix+"/events/"+esc(id), nil, nil, &e)
}

func (c *Client) ReplayEvent(ctx context.Context, id string, r api.EventReplayRequest) (model.Replay, error) {
	var out model.Replay
	return out, c.do(ctx, "POST", prefix+"/events/"+esc(id)+"/replay", nil, r, &out)
}

// --- replays ---

func (c *Client) CreateReplay(ctx context.Context, r api.ReplayRequest) (model.Replay, error) {
	var out model.Replay
	return out, c.do(ctx, "POST", prefix+"/replays", nil, r, &out)
}

func (c *Client) GetReplay(ctx context.Context, id string) (model.Replay, error) {
	var out model.Replay
	return out, c.do(ctx, "GET", prefix+"/replays/"+esc(id), nil, nil, &out)
}

func (c *Client) ListReplays(ctx context.Context, cursor string, limit int) (api.Page[model.Replay], error) {
	var p api.Page[model.Replay]
	return p, c.do(ctx, "GET", prefix+"/replays", pageQuery(nil, cursor, limit), nil, &p)
}

// --- audit ---

func (c *Client) ListAudit(ctx context.Context, f api.AuditFilter, cursor string, limit int) (api.Page[model.AuditEntry], error) {
	q := url.Values{}
	for k, v := range map[string]string{"action": f.Action, "object_type": f.ObjectType, "object_id": f.ObjectID, "replay_id": f.ReplayID, "actor": f.Actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	var p api.Page[model.AuditEntry]
	return p, c.do(ctx, "GET", prefix+"/audit", pageQuery(q, cursor, limit), nil, &p)
}

// --- tokens ---

func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	var p api.Page[api.Token]
	return p.Items, c.do(ctx, "GET", prefix+"/tokens", nil, nil, &p)
}

func (c *Client) CreateToken(ctx context.Context, name, role string) (api.CreatedToken, error) {
	var out api.CreatedToken
	return out, c.do(ctx, "POST", prefix+"/tokens", nil, map[string]string{"name": name, "role": role}, &out)
}

func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", prefix+"/tokens/"+esc(name), nil, nil, nil)
}
