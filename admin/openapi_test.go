package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIMatchesRouter: the served document is valid OpenAPI 3.1 and
// lists exactly the routes the router serves.
func TestOpenAPIMatchesRouter(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	raw := e.must(http.StatusOK, "GET", "/api/v1/openapi.json", nil, nil)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}

	var inRouter, inDoc []string
	for _, rt := range e.adm.Routes() {
		inRouter = append(inRouter, rt.Method+" "+routePathToOpenAPI(rt.Path))
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			inDoc = append(inDoc, method+" "+path)
			public := op.Security != nil && len(*op.Security) == 0
			want := path == "/healthz" || path == "/readyz"
			if public != want {
				t.Errorf("%s %s: documented public=%v", method, path, public)
			}
		}
	}
	slices.Sort(inRouter)
	slices.Sort(inDoc)
	for _, r := range inRouter {
		if !slices.Contains(inDoc, r) {
			t.Errorf("route %s is served but not documented", r)
		}
	}
	for _, r := range inDoc {
		if !slices.Contains(inRouter, r) {
			t.Errorf("route %s is documented but not served", r)
		}
	}
}

// TestOpenAPISchemasDescribeAnswers checks real answers against the
// documented schemas.
func TestOpenAPISchemasDescribeAnswers(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "k1", `{"a":1}`)
	doc, err := OpenAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	check := func(schema, path string) {
		t.Helper()
		raw := e.must(http.StatusOK, "GET", path, nil, nil)
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		s := doc.Components.Schemas[schema].Value
		if err := s.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("GET %s does not match schema %s: %v\n%s", path, schema, err, raw)
		}
	}
	check("Source", "/api/v1/sources/shop")
	check("Destination", "/api/v1/destinations/app")
	check("Event", "/api/v1/events/"+id)
	var err2 ErrorBody
	_, raw := e.call("GET", "/api/v1/sources/nope", nil, nil)
	if json.Unmarshal(raw, &err2) != nil || err2.Error.Code != "not_found" {
		t.Fatalf("error body: %s", raw)
	}
}
