package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
)

// operation documents one route. The list below is written by hand, apart
// from the router table in server.go, so TestOpenAPIMatchesRouter catches a
// route added to one and not the other.
type operation struct {
	method, path string // OpenAPI form: /api/v1/sources/{slug}
	summary      string
	tag          string
	query        []string
	in           string // request schema; "" none
	inOptional   bool
	status       int
	out          string // response schema; "Page:X" a page of X; "" no body
	public       bool
	text         bool   // text/plain answer
	binary       string // media type of a binary answer, e.g. application/x-tar
}

var eventQuery = []string{"source", "destination", "status", "event_type", "since", "until", "idempotency_key", "cursor", "limit"}

var operations = []operation{
	{method: "GET", path: "/healthz", summary: "Liveness", tag: "health", status: 200, out: "Status", public: true},
	{method: "GET", path: "/readyz", summary: "Readiness: recovery done and taking traffic", tag: "health", status: 200, out: "Status", public: true},
	{method: "GET", path: "/metrics", summary: "Prometheus metrics (a token unless --metrics-public)", tag: "health", status: 200, text: true},
	{method: "GET", path: "/api/v1/openapi.json", summary: "This document", tag: "meta", status: 200, out: "Object"},

	{method: "GET", path: "/api/v1/sources", summary: "List sources", tag: "sources", status: 200, out: "Page:Source"},
	{method: "POST", path: "/api/v1/sources", summary: "Create a source; the answer shows its secrets in clear, once", tag: "sources", in: "SourceInput", status: 201, out: "Source"},
	{method: "GET", path: "/api/v1/sources/{slug}", summary: "Read a source (secrets masked)", tag: "sources", status: 200, out: "Source"},
	{method: "PUT", path: "/api/v1/sources/{slug}", summary: "Replace a source (secrets change only by rotation)", tag: "sources", in: "SourceInput", status: 200, out: "Source"},
	{method: "DELETE", path: "/api/v1/sources/{slug}", summary: "Delete a source", tag: "sources", status: 204},
	{method: "POST", path: "/api/v1/sources/{slug}/secrets", summary: "Add a secret (generated, or the provider's); the old ones stay valid", tag: "sources", in: "SecretInput", inOptional: true, status: 201, out: "SecretRotation"},
	{method: "DELETE", path: "/api/v1/sources/{slug}/secrets/{secret_id}", summary: "Remove a secret", tag: "sources", status: 200, out: "Source"},

	{method: "GET", path: "/api/v1/destinations", summary: "List destinations", tag: "destinations", status: 200, out: "Page:Destination"},
	{method: "POST", path: "/api/v1/destinations", summary: "Create a destination; the answer shows its signing secret, once", tag: "destinations", in: "DestinationInput", status: 201, out: "Destination"},
	{method: "GET", path: "/api/v1/destinations/{slug}", summary: "Read a destination with its queue", tag: "destinations", status: 200, out: "Destination"},
	{method: "PUT", path: "/api/v1/destinations/{slug}", summary: "Replace a destination", tag: "destinations", in: "DestinationInput", status: 200, out: "Destination"},
	{method: "DELETE", path: "/api/v1/destinations/{slug}", summary: "Delete a destination no source routes to", tag: "destinations", status: 204},
	{method: "POST", path: "/api/v1/destinations/{slug}/pause", summary: "Pause delivery (the queue keeps filling)", tag: "destinations", status: 200, out: "Destination"},
	{method: "POST", path: "/api/v1/destinations/{slug}/resume", summary: "Resume delivery", tag: "destinations", status: 200, out: "Destination"},
	{method: "POST", path: "/api/v1/destinations/{slug}/signing-secret", summary: "Rotate the signing secret", tag: "destinations", in: "SecretInput", inOptional: true, status: 201, out: "SecretRotation"},
	{method: "GET", path: "/api/v1/destinations/{slug}/dead-letters", summary: "List the dead-letter queue, oldest first", tag: "destinations", query: []string{"cursor", "limit"}, status: 200, out: "Page:DeadLetter"},
	{method: "POST", path: "/api/v1/destinations/{slug}/dead-letters/redrive", summary: "Replay all dead letters, or those matching", tag: "destinations", in: "RedriveRequest", inOptional: true, status: 202, out: "Replay"},

	{method: "GET", path: "/api/v1/agents", summary: "List agents", tag: "agents", status: 200, out: "Page:Agent"},
	{method: "POST", path: "/api/v1/agents", summary: "Create an agent; the answer shows its secret, once", tag: "agents", in: "AgentInput", status: 201, out: "Agent"},
	{method: "GET", path: "/api/v1/agents/{id}", summary: "Read an agent", tag: "agents", status: 200, out: "Agent"},
	{method: "PUT", path: "/api/v1/agents/{id}", summary: "Replace an agent (its secret is kept)", tag: "agents", in: "AgentInput", status: 200, out: "Agent"},
	{method: "DELETE", path: "/api/v1/agents/{id}", summary: "Delete an agent nothing uses", tag: "agents", status: 204},
	{method: "POST", path: "/api/v1/agents/{id}/secret", summary: "Rotate the agent's secret", tag: "agents", status: 201, out: "Agent"},
	{method: "POST", path: "/api/v1/agents/{id}/enrollment", summary: "Enroll an agent: create it, or rotate its secret and cut its session; the answer is the agentd command line, shown once (409 when the tunnel is off)", tag: "agents", in: "EnrollmentRequest", inOptional: true, status: 201, out: "Enrollment"},

	{method: "GET", path: "/api/v1/forwards", summary: "List raw TCP forwards", tag: "forwards", status: 200, out: "Page:Forward"},
	{method: "POST", path: "/api/v1/forwards", summary: "Create a forward: connections to listen go through agent to target (409 when the tunnel is off)", tag: "forwards", in: "ForwardInput", status: 201, out: "Forward"},
	{method: "GET", path: "/api/v1/forwards/{listen}", summary: "Read a forward; listen is host:port, URL-escaped", tag: "forwards", status: 200, out: "Forward"},
	{method: "DELETE", path: "/api/v1/forwards/{listen}", summary: "Delete a forward; its listener closes", tag: "forwards", status: 204},

	{method: "GET", path: "/api/v1/events", summary: "List events, newest first. A page's work is bounded: for a filter few events match, a page may be short, even empty, while next_cursor is set; keep paging until it is empty", tag: "events", query: eventQuery, status: 200, out: "Page:Event"},
	{method: "GET", path: "/api/v1/events/{id}", summary: "Read an event: headers, raw body, every attempt", tag: "events", status: 200, out: "Event"},
	{method: "POST", path: "/api/v1/events/{id}/replay", summary: "Replay one event to all its destinations or one", tag: "events", in: "EventReplayRequest", inOptional: true, status: 202, out: "Replay"},

	{method: "GET", path: "/api/v1/replays", summary: "List replays, newest first", tag: "replays", query: []string{"cursor", "limit"}, status: 200, out: "Page:Replay"},
	{method: "POST", path: "/api/v1/replays", summary: "Replay the events matching the event list's filters, in the background", tag: "replays", in: "ReplayRequest", status: 202, out: "Replay"},
	{method: "GET", path: "/api/v1/replays/{id}", summary: "Read a replay's status and counts", tag: "replays", status: 200, out: "Replay"},

	{method: "GET", path: "/api/v1/cluster", summary: "The cluster as this node sees it: members, reachability, each partition's replicas, leader, owner, applied index, destinations and every member's applied index and lag, asked of the members (?local=true: this node's view alone; 404 on a single node)", tag: "cluster", status: 200, out: "ClusterStatus"},
	{method: "POST", path: "/api/v1/cluster/nodes", summary: "Add a member: it becomes a replica of every partition, then starts with serve --join and catches up (a replacement for a removed member takes a new id)", tag: "cluster", in: "ClusterNodeRequest", status: 200, out: "ClusterStatus"},
	{method: "DELETE", path: "/api/v1/cluster/nodes/{id}", summary: "Remove a member (a dead one, before its replacement is added) from every partition; refused where it would leave two members or fewer", tag: "cluster", status: 200, out: "ClusterStatus"},
	{method: "GET", path: "/api/v1/cluster/replays", summary: "Between members: this member's replays (its parts of those split among members) only, newest first (GET /api/v1/replays lists every member's)", tag: "cluster", query: []string{"cursor", "limit"}, status: 200, out: "Page:Replay"},
	{method: "POST", path: "/api/v1/cluster/replays", summary: "Between members: start this member's part of a replay (the destinations it delivers) under the replay's id; a replay asked of any member goes to the members that deliver its destinations this way", tag: "cluster", in: "Replay", status: 202, out: "Replay"},
	{method: "GET", path: "/api/v1/cluster/replays/{id}", summary: "Between members: this member's part of a replay (GET /api/v1/replays/{id} sums every member's)", tag: "cluster", status: 200, out: "Replay"},
	{method: "GET", path: "/api/v1/audit", summary: "List audit entries, newest first", tag: "audit", query: []string{"action", "object_type", "object_id", "replay_id", "actor", "since", "until", "cursor", "limit"}, status: 200, out: "Page:AuditEntry"},

	{method: "POST", path: "/api/v1/backup", summary: "Stream a consistent online backup (tar: Pebble checkpoint, config file, manifest last; the secret key and tunnel identity only with include_secret_key=true); one at a time (409)", tag: "backup", query: []string{"include_secret_key"}, status: 200, binary: "application/x-tar"},

	{method: "GET", path: "/api/v1/stats/minutes", summary: "Events received, delivered, failed and dead-lettered in each of the last minutes (default 60, at most 1440), oldest first", tag: "stats", query: []string{"minutes"}, status: 200, out: "Page:MinuteCounts"},

	{method: "GET", path: "/api/v1/tokens", summary: "List API tokens (never the tokens themselves)", tag: "tokens", status: 200, out: "Page:Token"},
	{method: "POST", path: "/api/v1/tokens", summary: "Create a token; the answer shows it, once", tag: "tokens", in: "TokenInput", status: 201, out: "CreatedToken"},
	{method: "DELETE", path: "/api/v1/tokens/{name}", summary: "Revoke a token", tag: "tokens", status: 204},
}

// schemaTypes are the components, generated from the Go types the
// handlers encode and decode.
var schemaTypes = map[string]any{
	"Status":             map[string]string{},
	"Object":             map[string]any{},
	"Error":              ErrorBody{},
	"Source":             SourceOut{},
	"SourceInput":        model.Source{},
	"SecretInput":        api.SecretRequest{},
	"SecretRotation":     SecretRotation{},
	"Destination":        DestinationOut{},
	"DestinationInput":   model.Destination{},
	"DeadLetter":         DeadLetter{},
	"RedriveRequest":     RedriveRequest{},
	"Agent":              AgentOut{},
	"AgentInput":         model.Agent{},
	"Enrollment":         Enrollment{},
	"EnrollmentRequest":  EnrollmentRequest{},
	"Forward":            ForwardOut{},
	"ForwardInput":       model.Forward{},
	"Event":              EventOut{},
	"EventReplayRequest": EventReplayRequest{},
	"Replay":             Replay{},
	"ReplayRequest":      ReplayRequest{},
	"AuditEntry":         model.AuditEntry{},
	"Token":              api.Token{},
	"TokenInput":         api.TokenRequest{},
	"MinuteCounts":       MinuteCounts{},
	"CreatedToken":       CreatedToken{},
	"ClusterStatus":      api.ClusterStatus{},
	"ClusterNodeRequest": api.ClusterNodeRequest{},
}

var queryDocs = map[string]string{
	"include_secret_key": "also carry the key that seals secrets at rest, and the tunnel's TLS identity; keep such a backup as safe as the key",
	"source":             "source slug",
	"destination":        "destination slug: events routed there; status is then the status at it",
	"status":             "pending, delivered, dead_lettered or no_destinations",
	"event_type":         "an event type, or a pattern ending in .* or /*",
	"since":              "RFC 3339 time, inclusive",
	"until":              "RFC 3339 time, exclusive",
	"idempotency_key":    "the provider's event id or idempotency key",
	"cursor":             "next_cursor of the previous page",
	"limit":              "page size",
	"action":             "an action, or a prefix ending in . or *",
	"object_type":        "event, source, destination, agent, token, replay, ...",
	"object_id":          "the object's id or slug",
	"replay_id":          "entries of one replay",
	"actor":              "token:<name>, config:<file>, ...",
	"minutes":            "how many minutes, the current one last",
}

var pathParamRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// buildOpenAPI renders the OpenAPI 3.1 document.
func buildOpenAPI(*Server) ([]byte, error) {
	doc, err := OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// OpenAPIDocument builds the document.
func OpenAPIDocument() (*openapi3.T, error) {
	gen := openapi3gen.NewGenerator(openapi3gen.SchemaCustomizer(customizeSchema))
	schemas := openapi3.Schemas{}
	for name, v := range schemaTypes {
		ref, err := gen.GenerateSchemaRef(reflect.TypeOf(v))
		if err != nil {
			return nil, fmt.Errorf("admin: schema %s: %w", name, err)
		}
		inline(ref, map[*openapi3.Schema]bool{})
		if strings.HasSuffix(name, "Input") || strings.HasSuffix(name, "Request") {
			// Unknown fields are refused.
			ref.Value.AdditionalProperties = openapi3.AdditionalProperties{Has: ptr(false)}
		}
		schemas[name] = ref
	}
	doc := &openapi3.T{
		OpenAPI: "3.1.0",
		Info: &openapi3.Info{
			Title:       "WebhookOps admin API",
			Version:     "1",
			Description: "Manage sources, destinations and agents; find events and their attempts; replay; read the audit log. Every route but /healthz and /readyz needs Authorization: Bearer <token>.",
		},
		Components: &openapi3.Components{
			Schemas: schemas,
			SecuritySchemes: openapi3.SecuritySchemes{
				"bearer": &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().WithType("http").WithScheme("bearer")},
			},
		},
		Security: openapi3.SecurityRequirements{{"bearer": []string{}}},
		Paths:    openapi3.NewPaths(),
	}
	errResp := &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("error").
		WithJSONSchemaRef(&openapi3.SchemaRef{Ref: "#/components/schemas/Error"})}
	seen := map[string]bool{}
	for _, op := range operations {
		id := op.method + " " + op.path
		if seen[id] {
			return nil, fmt.Errorf("admin: operation %s listed twice", id)
		}
		seen[id] = true
		o := openapi3.NewOperation()
		o.Summary = op.summary
		o.Tags = []string{op.tag}
		o.OperationID = operationID(op)
		if op.public {
			o.Security = &openapi3.SecurityRequirements{}
		}
		for _, m := range pathParamRE.FindAllStringSubmatch(op.path, -1) {
			o.AddParameter(openapi3.NewPathParameter(m[1]).WithSchema(openapi3.NewStringSchema()))
		}
		for _, q := range op.query {
			s := openapi3.NewStringSchema()
			if q == "limit" || q == "minutes" {
				s = openapi3.NewIntegerSchema().WithMin(1)
			}
			if q == "since" || q == "until" {
				s.Format = "date-time"
			}
			if q == "include_secret_key" {
				s = openapi3.NewBoolSchema()
			}
			p := openapi3.NewQueryParameter(q).WithSchema(s)
			p.Description = queryDocs[q]
			o.AddParameter(p)
		}
		if op.in != "" {
			rb := openapi3.NewRequestBody().WithJSONSchemaRef(&openapi3.SchemaRef{Ref: "#/components/schemas/" + op.in})
			rb.Required = !op.inOptional
			o.RequestBody = &openapi3.RequestBodyRef{Value: rb}
		}
		resp := openapi3.NewResponse().WithDescription(http.StatusText(op.status))
		switch {
		case op.binary != "":
			resp.WithContent(openapi3.Content{op.binary: openapi3.NewMediaType().WithSchema(openapi3.NewStringSchema().WithFormat("binary"))})
		case op.text:
			resp.WithContent(openapi3.Content{"text/plain": openapi3.NewMediaType().WithSchema(openapi3.NewStringSchema())})
		case strings.HasPrefix(op.out, "Page:"):
			resp.WithJSONSchema(pageSchema(strings.TrimPrefix(op.out, "Page:")))
		case op.out != "":
			resp.WithJSONSchemaRef(&openapi3.SchemaRef{Ref: "#/components/schemas/" + op.out})
		}
		o.Responses = openapi3.NewResponses(
			openapi3.WithStatus(op.status, &openapi3.ResponseRef{Value: resp}),
			openapi3.WithName("default", errResp.Value),
		)
		doc.AddOperation(op.path, op.method, o)
	}
	return doc, nil
}

func pageSchema(item string) *openapi3.Schema {
	items := openapi3.NewArraySchema()
	items.Items = &openapi3.SchemaRef{Ref: "#/components/schemas/" + item}
	s := openapi3.NewObjectSchema()
	s.Properties = openapi3.Schemas{"items": items.NewRef(), "next_cursor": openapi3.NewStringSchema().NewRef()}
	s.Required = []string{"items", "next_cursor"}
	return s
}

func operationID(op operation) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.method))
	for _, part := range strings.Split(op.path, "/") {
		part = strings.Trim(part, "{}")
		if part == "" || part == "api" || part == "v1" {
			continue
		}
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// customizeSchema fixes what reflection cannot know: model.Duration is text
// ("15s"), and OpenAPI 3.1 spells "nullable" as a "null" type.
func customizeSchema(_ string, t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
	if t == reflect.TypeFor[model.Duration]() {
		*s = *openapi3.NewStringSchema()
		s.Description = "Go duration text with a unit: 500ms, 15s, 5m, 1h"
	}
	if t == reflect.TypeFor[[2]string]() {
		s.MinItems, s.MaxItems = 2, ptr(uint64(2))
	}
	if s.Nullable {
		s.Nullable = false
		if s.Type != nil && len(*s.Type) > 0 && !s.Type.Includes("null") {
			*s.Type = append(*s.Type, "null")
		}
	}
	if name, _, _ := strings.Cut(tag.Get("json"), ","); name == "-" {
		return &openapi3gen.ExcludeSchemaSentinel{}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// inline drops the type names the generator leaves as $ref: every schema
// here is written out where it is used.
func inline(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil {
		return
	}
	ref.Ref = ""
	s := ref.Value
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	for _, p := range s.Properties {
		inline(p, seen)
	}
	inline(s.Items, seen)
	inline(s.AdditionalProperties.Schema, seen)
	for _, l := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, r := range l {
			inline(r, seen)
		}
	}
}

// routePathToOpenAPI turns /sources/:slug into /sources/{slug}.
func routePathToOpenAPI(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
