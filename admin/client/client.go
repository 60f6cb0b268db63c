// Package client is a typed HTTP client of the admin API, for the CLI and
// for scripts written in Go. It speaks the shapes package admin defines and
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

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/wal"
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

func apiError(status int, raw []byte) *Error {
	e := &Error{Status: status}
	var eb admin.ErrorBody
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

const api = admin.APIPrefix

func esc(s string) string { return url.PathEscape(s) }

// --- sources ---

func (c *Client) ListSources(ctx context.Context) ([]admin.SourceOut, error) {
	var p admin.Page[admin.SourceOut]
	return p.Items, c.do(ctx, "GET", api+"/sources", nil, nil, &p)
}

func (c *Client) GetSource(ctx context.Context, slug string) (admin.SourceOut, error) {
	var s admin.SourceOut
	return s, c.do(ctx, "GET", api+"/sources/"+esc(slug), nil, nil, &s)
}

func (c *Client) CreateSource(ctx context.Context, s model.Source) (admin.SourceOut, error) {
	var out admin.SourceOut
	return out, c.do(ctx, "POST", api+"/sources", nil, s, &out)
}

func (c *Client) UpdateSource(ctx context.Context, s model.Source) (admin.SourceOut, error) {
	var out admin.SourceOut
	return out, c.do(ctx, "PUT", api+"/sources/"+esc(s.Slug), nil, s, &out)
}

func (c *Client) DeleteSource(ctx context.Context, slug string) error {
	return c.do(ctx, "DELETE", api+"/sources/"+esc(slug), nil, nil, nil)
}

// RotateSourceSecret adds a secret (generated when secret is "").
func (c *Client) RotateSourceSecret(ctx context.Context, slug, secret string) (admin.SecretRotation, error) {
	var out admin.SecretRotation
	var in any
	if secret != "" {
		in = map[string]string{"secret": secret}
	}
	return out, c.do(ctx, "POST", api+"/sources/"+esc(slug)+"/secrets", nil, in, &out)
}

func (c *Client) RemoveSourceSecret(ctx context.Context, slug, secretID string) (admin.SourceOut, error) {
	var out admin.SourceOut
	return out, c.do(ctx, "DELETE", api+"/sources/"+esc(slug)+"/secrets/"+esc(secretID), nil, nil, &out)
}

// --- destinations ---

func (c *Client) ListDestinations(ctx context.Context) ([]admin.DestinationOut, error) {
	var p admin.Page[admin.DestinationOut]
	return p.Items, c.do(ctx, "GET", api+"/destinations", nil, nil, &p)
}

func (c *Client) GetDestination(ctx context.Context, slug string) (admin.DestinationOut, error) {
	var d admin.DestinationOut
	return d, c.do(ctx, "GET", api+"/destinations/"+esc(slug), nil, nil, &d)
}

func (c *Client) CreateDestination(ctx context.Context, d model.Destination) (admin.DestinationOut, error) {
	var out admin.DestinationOut
	return out, c.do(ctx, "POST", api+"/destinations", nil, d, &out)
}

func (c *Client) UpdateDestination(ctx context.Context, d model.Destination) (admin.DestinationOut, error) {
	var out admin.DestinationOut
	return out, c.do(ctx, "PUT", api+"/destinations/"+esc(d.Slug), nil, d, &out)
}

func (c *Client) DeleteDestination(ctx context.Context, slug string) error {
	return c.do(ctx, "DELETE", api+"/destinations/"+esc(slug), nil, nil, nil)
}

func (c *Client) PauseDestination(ctx context.Context, slug string) (admin.DestinationOut, error) {
	var out admin.DestinationOut
	return out, c.do(ctx, "POST", api+"/destinations/"+esc(slug)+"/pause", nil, nil, &out)
}

func (c *Client) ResumeDestination(ctx context.Context, slug string) (admin.DestinationOut, error) {
	var out admin.DestinationOut
	return out, c.do(ctx, "POST", api+"/destinations/"+esc(slug)+"/resume", nil, nil, &out)
}

func (c *Client) RotateSigningSecret(ctx context.Context, slug, secret string) (admin.SecretRotation, error) {
	var out admin.SecretRotation
	var in any
	if secret != "" {
		in = map[string]string{"secret": secret}
	}
	return out, c.do(ctx, "POST", api+"/destinations/"+esc(slug)+"/signing-secret", nil, in, &out)
}

func (c *Client) ListDeadLetters(ctx context.Context, slug, cursor string, limit int) (admin.Page[admin.DeadLetter], error) {
	var p admin.Page[admin.DeadLetter]
	return p, c.do(ctx, "GET", api+"/destinations/"+esc(slug)+"/dead-letters", pageQuery(nil, cursor, limit), nil, &p)
}

func (c *Client) Redrive(ctx context.Context, slug string, r admin.RedriveRequest) (admin.Replay, error) {
	var out admin.Replay
	return out, c.do(ctx, "POST", api+"/destinations/"+esc(slug)+"/dead-letters/redrive", nil, r, &out)
}

// --- agents ---

func (c *Client) ListAgents(ctx context.Context) ([]admin.AgentOut, error) {
	var p admin.Page[admin.AgentOut]
	return p.Items, c.do(ctx, "GET", api+"/agents", nil, nil, &p)
}

func (c *Client) GetAgent(ctx context.Context, id string) (admin.AgentOut, error) {
	var a admin.AgentOut
	return a, c.do(ctx, "GET", api+"/agents/"+esc(id), nil, nil, &a)
}

func (c *Client) CreateAgent(ctx context.Context, a model.Agent) (admin.AgentOut, error) {
	var out admin.AgentOut
	return out, c.do(ctx, "POST", api+"/agents", nil, a, &out)
}

func (c *Client) UpdateAgent(ctx context.Context, a model.Agent) (admin.AgentOut, error) {
	var out admin.AgentOut
	return out, c.do(ctx, "PUT", api+"/agents/"+esc(a.ID), nil, a, &out)
}

func (c *Client) DeleteAgent(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", api+"/agents/"+esc(id), nil, nil, nil)
}

func (c *Client) RotateAgentSecret(ctx context.Context, id string) (admin.AgentOut, error) {
	var out admin.AgentOut
	return out, c.do(ctx, "POST", api+"/agents/"+esc(id)+"/secret", nil, nil, &out)
}

// Enroll creates agent id or rotates its secret, and returns the agentd
// command line. allowed, when not nil, replaces the agent's allowed
// targets; nil keeps them.
func (c *Client) Enroll(ctx context.Context, id string, allowed []string) (admin.Enrollment, error) {
	var out admin.Enrollment
	var in any
	if allowed != nil {
		in = admin.EnrollmentRequest{AllowedTargets: allowed}
	}
	return out, c.do(ctx, "POST", api+"/agents/"+esc(id)+"/enrollment", nil, in, &out)
}

// --- forwards ---

func (c *Client) ListForwards(ctx context.Context) ([]admin.ForwardOut, error) {
	var p admin.Page[admin.ForwardOut]
	return p.Items, c.do(ctx, "GET", api+"/forwards", nil, nil, &p)
}

// GetForward reads the forward listening on listen (host:port).
func (c *Client) GetForward(ctx context.Context, listen string) (admin.ForwardOut, error) {
	var f admin.ForwardOut
	return f, c.do(ctx, "GET", api+"/forwards/"+esc(listen), nil, nil, &f)
}

func (c *Client) CreateForward(ctx context.Context, f model.Forward) (admin.ForwardOut, error) {
	var out admin.ForwardOut
	return out, c.do(ctx, "POST", api+"/forwards", nil, f, &out)
}

func (c *Client) DeleteForward(ctx context.Context, listen string) error {
	return c.do(ctx, "DELETE", api+"/forwards/"+esc(listen), nil, nil, nil)
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
func FilterQuery(f admin.EventFilter) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("source", f.Source)
	set("destination", f.Destination)
	set("status", f.Status)
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

func (c *Client) ListEvents(ctx context.Context, f admin.EventFilter, cursor string, limit int) (admin.Page[admin.EventOut], error) {
	var p admin.Page[admin.EventOut]
	return p, c.do(ctx, "GET", api+"/events", pageQuery(FilterQuery(f), cursor, limit), nil, &p)
}

func (c *Client) GetEvent(ctx context.Context, id string) (admin.EventOut, error) {
	var e admin.EventOut
	return e, c.do(ctx, "GET", api+"/events/"+esc(id), nil, nil, &e)
}

func (c *Client) ReplayEvent(ctx context.Context, id string, r admin.EventReplayRequest) (admin.Replay, error) {
	var out admin.Replay
	return out, c.do(ctx, "POST", api+"/events/"+esc(id)+"/replay", nil, r, &out)
}

// --- replays ---

func (c *Client) CreateReplay(ctx context.Context, r admin.ReplayRequest) (admin.Replay, error) {
	var out admin.Replay
	return out, c.do(ctx, "POST", api+"/replays", nil, r, &out)
}

func (c *Client) GetReplay(ctx context.Context, id string) (admin.Replay, error) {
	var out admin.Replay
	return out, c.do(ctx, "GET", api+"/replays/"+esc(id), nil, nil, &out)
}

func (c *Client) ListReplays(ctx context.Context, cursor string, limit int) (admin.Page[admin.Replay], error) {
	var p admin.Page[admin.Replay]
	return p, c.do(ctx, "GET", api+"/replays", pageQuery(nil, cursor, limit), nil, &p)
}

// --- audit ---

func (c *Client) ListAudit(ctx context.Context, f admin.AuditFilter, cursor string, limit int) (admin.Page[wal.AuditEntry], error) {
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
	var p admin.Page[wal.AuditEntry]
	return p, c.do(ctx, "GET", api+"/audit", pageQuery(q, cursor, limit), nil, &p)
}

// --- tokens ---

func (c *Client) ListTokens(ctx context.Context) ([]admin.Token, error) {
	var p admin.Page[admin.Token]
	return p.Items, c.do(ctx, "GET", api+"/tokens", nil, nil, &p)
}

func (c *Client) CreateToken(ctx context.Context, name, role string) (admin.CreatedToken, error) {
	var out admin.CreatedToken
	return out, c.do(ctx, "POST", api+"/tokens", nil, map[string]string{"name": name, "role": role}, &out)
}

func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", api+"/tokens/"+esc(name), nil, nil, nil)
}
