package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

func readExample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadExample(t *testing.T) {
	f, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	yes := true
	want := &File{
		Sources: []model.Source{{
			Slug:     "github",
			Provider: model.ProviderGitHub,
			Secrets:  []string{"s3cret"},
			Routes:   []model.Route{{Destination: "app", EventTypes: []string{"push", "issues.*"}}},
		}},
		Destinations: []model.Destination{{
			Slug:                "app",
			URL:                 "http://127.0.0.1:3000/hooks",
			Ordering:            model.OrderingOrdered,
			MaxInFlight:         1,
			Timeout:             model.Duration(15 * time.Second),
			MaxAttempts:         8,
			BackoffBase:         model.Duration(5 * time.Second),
			BackoffMax:          model.Duration(time.Hour),
			VerifyTLS:           &yes,
			Headers:             map[string]string{"X-Team": "payments"},
			SigningSecret:       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			AllowPrivateNetwork: true,
		}},
		Agents:   []model.Agent{{ID: "dev", AllowedTargets: []string{"localhost:3000"}}},
		Forwards: []model.Forward{{Listen: "127.0.0.1:15432", Agent: "dev", Target: "db.internal:5432"}},
	}
	got := &File{Sources: f.Sources, Destinations: f.Destinations, Agents: f.Agents, Forwards: f.Forwards}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", got, want)
	}
	if err := f.Validate(nil); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want File
	}{
		{"empty", "", File{}},
		{"only comments", "# nothing yet\n\n# really\n", File{}},
		{"document marker only", "---\n", File{}},
		{"trailing empty document", "agents: [{id: a}]\n---\n# done\n", File{Agents: []model.Agent{{ID: "a"}}}},
		{"byte order mark", "\ufeffagents: [{id: a}]\n", File{Agents: []model.Agent{{ID: "a"}}}},
		{"null sections", "sources:\ndestinations: ~\nagents: null\n", File{}},
		{"empty sections", "sources: []\nforwards: []\n", File{Sources: []model.Source{}, Forwards: []model.Forward{}}},
		{"unsigned source", "sources: [{slug: open, provider: generic, verify: none}]\n",
			File{Sources: []model.Source{{Slug: "open", Provider: "generic", Verify: "none"}}}},
		{"quoted number as secret", "sources: [{slug: s, provider: stripe, secrets: [\"0123\", !!str 0456]}]\n",
			File{Sources: []model.Source{{Slug: "s", Provider: "stripe", Secrets: []string{"0123", "0456"}}}}},
		{"block scalar and float", "destinations:\n  - slug: d\n    url: |-\n      https://example.com/x\n    rate_limit: 2.5\n",
			File{Destinations: []model.Destination{{Slug: "d", URL: "https://example.com/x", RateLimit: 2.5}}}},
		{"integer rate limit", "destinations: [{slug: d, url: 'https://e.com', rate_limit: 10}]\n",
			File{Destinations: []model.Destination{{Slug: "d", URL: "https://e.com", RateLimit: 10}}}},
		{"extension keys hold anchors", `
x-defaults: &defaults
  url: https://example.com/in
  timeout: 30s
destinations:
  - <<: *defaults
    slug: a
  - <<: *defaults
    slug: b
    timeout: 5s
`[1:], File{
			Destinations: []model.Destination{
				{Slug: "a", URL: "https://example.com/in", Timeout: model.Duration(30 * time.Second)},
				{Slug: "b", URL: "https://example.com/in", Timeout: model.Duration(5 * time.Second)},
			},
		}},
		{"anchors and merge keys", `
destinations:
  - &defaults
    slug: a
    url: https://example.com/in
    max_attempts: 3
  - <<: *defaults
    slug: b
    max_attempts: 5
agents:
  - id: dev
    allowed_targets: &targets ["localhost:3000"]
  - id: ops
    allowed_targets: *targets
`[1:], File{
			Destinations: []model.Destination{
				{Slug: "a", URL: "https://example.com/in", MaxAttempts: 3},
				{Slug: "b", URL: "https://example.com/in", MaxAttempts: 5},
			},
			Agents: []model.Agent{
				{ID: "dev", AllowedTargets: []string{"localhost:3000"}},
				{ID: "ops", AllowedTargets: []string{"localhost:3000"}},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("c.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := File{Sources: f.Sources, Destinations: f.Destinations, Agents: f.Agents, Forwards: f.Forwards}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// errorCases are files with one problem each, and the first line of the
// error each must produce: file:line:column: field: message. They seed
// FuzzParse too.
var errorCases = []struct {
	name string
	yaml string
	want string // the whole first error, or its prefix when it ends in "…"
}{
	{"unknown field", `
destinations:
  - slug: app
    url: http://127.0.0.1:3000/hooks
    max_inflight: 4
`, `c.yaml:5:5: destinations[0].max_inflight: unknown field "max_inflight"; did you mean "max_in_flight"?`},
	{"unknown top-level field", "sources: []\nroutes: []\n",
		`c.yaml:2:1: routes: unknown field "routes" (expected sources, destinations, agents, forwards)`},
	{"agent secret is not a config field", "agents:\n  - id: dev\n    secret: x\n",
		`c.yaml:3:5: agents[0].secret: unknown field "secret" (expected id, allowed_targets)`},
	{"bad duration", `
destinations:
  - slug: app
    url: http://127.0.0.1:3000/hooks
    timeout: 15
`, `c.yaml:5:5: destinations[0].timeout: invalid duration "15" (use a unit, e.g. 15s, 5m, 1h)`},
	{"duration as list", "destinations:\n  - slug: app\n    url: http://a\n    backoff_max: [1h]\n",
		`c.yaml:4:5: destinations[0].backoff_max: must be a single value, not a list`},
	{"bad provider", `
sources:
  - slug: github
    provider: gitlab
    secrets: ["s3cret"]
`, `c.yaml:4:5: sources[0].provider: unknown provider "gitlab" (generic, github, shopify, slack, stripe or standard-webhooks)`},
	{"missing secrets", `
sources:
  - slug: github
    provider: github
`, `c.yaml:3:5: sources[0].secrets: at least one secret is required unless verify is "none"`},
	{"empty secret", "sources:\n  - slug: s\n    provider: slack\n    secrets: [a, '']\n",
		`c.yaml:4:18: sources[0].secrets[1]: must not be empty`},
	{"route to unknown destination", `
sources:
  - slug: github
    provider: github
    secrets: ["s3cret"]
    routes:
      - destination: app
      - destination: billing
destinations:
  - slug: app
    url: http://127.0.0.1:3000/hooks
`, `c.yaml:8:9: sources[0].routes[1].destination: unknown destination "billing": it is not declared under destinations in this file`},
	{"duplicate route", `
sources:
  - slug: github
    provider: github
    secrets: ["s3cret"]
    routes:
      - destination: app
        event_types: [push]
      - destination: app
        event_types: [issues]
destinations:
  - slug: app
    url: http://127.0.0.1:3000/hooks
`, `c.yaml:9:9: sources[0].routes[1].destination: "app" is already routed by routes[0]; …`},
	{"duplicate destination slug", `
destinations:
  - slug: app
    url: http://127.0.0.1:3000/hooks
  - slug: app
    url: http://127.0.0.1:4000/hooks
`, `c.yaml:5:5: destinations[1].slug: slug "app" is already used by destinations[0] (line 3)`},
	{"duplicate source slug", "sources:\n  - {slug: s, provider: generic, verify: none}\n  - {slug: s, provider: generic, verify: none}\n",
		`c.yaml:3:6: sources[1].slug: slug "s" is already used by sources[0] (line 2)`},
	{"duplicate agent id", "agents:\n  - id: dev\n  - id: dev\n",
		`c.yaml:3:5: agents[1].id: id "dev" is already used by agents[0] (line 2)`},
	{"duplicate forward listen", `
agents: [{id: dev}]
forwards:
  - {listen: "127.0.0.1:1", agent: dev, target: "a:1"}
  - {listen: "127.0.0.1:1", agent: dev, target: "b:1"}
`, `c.yaml:5:6: forwards[1].listen: "127.0.0.1:1" is already used by forwards[0] (line 4)`},
	{"bad URL", `
destinations:
  - slug: app
    url: 127.0.0.1:3000/hooks
`, `c.yaml:4:5: destinations[0].url: "127.0.0.1:3000/hooks" is not an absolute http(s) URL`},
	{"missing URL", "destinations:\n  - slug: app\n",
		`c.yaml:2:5: destinations[0].url: required`},
	{"max_in_flight on ordered", `
destinations:
  - slug: app
    url: http://127.0.0.1:3000/hooks
    ordering: ordered
    max_in_flight: 4
`, `c.yaml:6:5: destinations[0].max_in_flight: only parallel destinations may have more than one in flight`},
	{"mode agent without agent", `
destinations:
  - slug: private
    url: http://localhost:3000/hooks
    mode: agent
`, `c.yaml:3:5: destinations[0].agent: mode agent needs a valid agent id, got ""`},
	{"mode agent with unknown agent", `
destinations:
  - slug: private
    url: http://localhost:3000/hooks
    mode: agent
    agent: office
`, `c.yaml:6:5: destinations[0].agent: unknown agent "office": it is not declared under agents in this file`},
	{"forward to unknown agent", `
forwards:
  - listen: 127.0.0.1:15432
    agent: dev
    target: db.internal:5432
`, `c.yaml:4:5: forwards[0].agent: unknown agent "dev": it is not declared under agents in this file`},
	{"defaults conflict", "destinations:\n  - slug: app\n    url: http://a\n    backoff_max: 1s\n",
		`c.yaml:4:5: destinations[0].backoff_max: backoff_base (5s) must not exceed backoff_max (1s)`},
	{"integer expected", "destinations:\n  - slug: app\n    url: http://a\n    max_attempts: many\n",
		`c.yaml:4:5: destinations[0].max_attempts: must be an integer, not a string`},
	{"integer overflow", "destinations:\n  - slug: app\n    url: http://a\n    max_attempts: 99999999999999999999\n",
		`c.yaml:4:5: destinations[0].max_attempts: …`},
	{"boolean expected", "destinations:\n  - slug: app\n    url: http://a\n    verify_tls: yes\n",
		`c.yaml:4:5: destinations[0].verify_tls: must be true or false, not a string`},
	{"number where a string belongs", "sources:\n  - slug: s\n    provider: github\n    secrets: [0123]\n",
		`c.yaml:4:15: sources[0].secrets[0]: must be a string, not the number 0123 (write "0123" to keep it as text)`},
	{"header value is a number", "destinations:\n  - slug: app\n    url: http://a\n    headers: {X-Retry: 3}\n",
		`c.yaml:4:15: destinations[0].headers.X-Retry: must be a string, not the number 3 (write "3" to keep it as text)`},
	{"mapping where a list belongs", "sources: {slug: s}\n",
		`c.yaml:1:1: sources: must be a list, not a mapping`},
	{"scalar where an item belongs", "agents: [dev]\n",
		`c.yaml:1:10: agents[0]: must be a mapping, not a string`},
	{"file is a list", "- slug: s\n",
		`c.yaml:1:1: the file must be a mapping of sources, destinations, agents and forwards, not a list`},
	{"syntax error", "sources: [\n", `c.yaml:1:10: invalid YAML: …`},
	{"tab indentation", "agents:\n\t- id: dev\n", `c.yaml:2:1: invalid YAML: …`},
	{"duplicate key", "agents:\n  - id: a\n    id: b\n", `c.yaml:3:5: invalid YAML: mapping key "id" already defined at [2:5]`},
	{"two documents", "agents: []\n---\nsources: []\n", `c.yaml:2:1: a config file holds one YAML document; this is a second one`},
	{"unknown alias", "agents:\n  - id: *name\n", `c.yaml:2:5: agents[0].id: alias *name has no anchor &name before it`},
	{"custom tag", "agents:\n  - id: !secret dev\n", `c.yaml:2:5: agents[0].id: tag !secret is not allowed here`},
	{"merge of a scalar", "agents:\n  - <<: dev\n", `c.yaml:2:5: agents[0]: << takes a mapping or a list of mappings, not a string`},
	{"anchor under an unknown key", `
base: &base {slug: x}
`, `c.yaml:2:1: base: unknown field "base" (expected sources, destinations, agents, forwards)`},
	{"unknown field in merged settings", `
x-defaults: &defaults
  url: https://example.com/in
  retries: 3
destinations:
  - <<: *defaults
    slug: a
`, `c.yaml:4:3: destinations[0].retries: unknown field "retries"`},
	{"invalid UTF-8", "agents:\n  - id: d\xffv\n", `c.yaml:2:10: file is not valid UTF-8`},
	{"nested too deep", "agents: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "\n",
		`c.yaml:1:40: nested more than 32 levels deep`},
	// goccy v1.19.2 counts the column of a tag that follows another one
	// short by one: the third tag starts at column 21.
	{"tag chain", "agents: !!seq !!seq !!seq []\n", `c.yaml:1:19: a value may carry at most one anchor and one tag`},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("c.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f)
			}
			if f != nil {
				t.Errorf("Parse returned a File with its error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			got := e.Error()
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(got, prefix) {
					t.Errorf("error\n got %s\nwant %s", got, tt.want)
				}
			} else if got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseWithKnown(t *testing.T) {
	src := []byte(`
sources:
  - slug: github
    provider: github
    secrets: [s3cret]
    routes: [{destination: from-api}]
destinations:
  - slug: private
    url: http://localhost:3000/
    mode: agent
    agent: enrolled
forwards:
  - {listen: "127.0.0.1:5432", agent: enrolled, target: "db:5432"}
`)
	var asked []string
	known := func(kind, slug string) bool {
		asked = append(asked, kind+":"+slug)
		return (kind == KindDestination && slug == "from-api") || (kind == KindAgent && slug == "enrolled")
	}
	f, err := ParseWith("c.yaml", src, known)
	if err != nil {
		t.Fatalf("ParseWith: %v", err)
	}
	want := []string{"destination:from-api", "agent:enrolled", "agent:enrolled"}
	if !reflect.DeepEqual(asked, want) {
		t.Errorf("known was asked %q, want %q", asked, want)
	}

	// Without the server, the same file refers to three things it lacks;
	// every one is reported, in file order.
	_, err = Parse("c.yaml", src)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse: want an ErrorList, got %T: %v", err, err)
	}
	wantLines := []string{
		`c.yaml:6:15: sources[0].routes[0].destination: unknown destination "from-api": it is not declared under destinations in this file`,
		`c.yaml:11:5: destinations[0].agent: unknown agent "enrolled": it is not declared under agents in this file`,
		`c.yaml:13:32: forwards[0].agent: unknown agent "enrolled": it is not declared under agents in this file`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, wantLines) {
		t.Errorf("errors:\n got %q\nwant %q", got, wantLines)
	}
	var first *Error
	if !errors.As(err, &first) || first.Line != 6 {
		t.Errorf("errors.As finds %v, want the first error (line 6)", first)
	}

	// Validate on the parsed File takes another view of the server.
	if err := f.Validate(func(string, string) bool { return false }); err == nil {
		t.Error("Validate with nothing known accepted dangling references")
	} else if !strings.Contains(err.Error(), "nor on the server") {
		t.Errorf("Validate error does not say the server lacks it too: %v", err)
	}
}

func TestValidateInCode(t *testing.T) {
	// A File built in code has no positions; errors still name the field.
	f := &File{Destinations: []model.Destination{{Slug: "app"}}}
	err := f.Validate(nil)
	want := "destinations[0].url: required"
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
	var nilFile *File
	if err := nilFile.Validate(nil); err != nil {
		t.Errorf("nil File: %v", err)
	}
}

func TestManyErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("agents:\n")
	for i := range maxErrors + 5 {
		fmt.Fprintf(&b, "  - id: Bad%d\n", i)
	}
	_, err := Parse("c.yaml", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("want an ErrorList, got %v", err)
	}
	if len(list) != maxErrors+1 || list[len(list)-1].Message != "and 5 more problems" {
		t.Errorf("got %d errors ending %q", len(list), list[len(list)-1].Message)
	}
}

func TestAliasExpansionIsBounded(t *testing.T) {
	// Go's types are not recursive, so aliases can only multiply along
	// sources -> routes -> event_types, and through << merges.
	const k = 200
	list := func(item string) string { return "[" + strings.Repeat(item+", ", k-1) + item + "]" }
	tests := map[string]string{
		"nested lists": `
sources:
  - slug: s
    provider: generic
    verify: none
    routes: &routes ` + list("{destination: d, event_types: &types "+list("push")+"}") + `
` + strings.Repeat("  - {slug: s, provider: generic, verify: none, routes: *routes}\n", k),
		"merge keys": func() string {
			var b strings.Builder
			b.WriteString("destinations:\n  - &m0 {slug: a, url: 'http://a'}\n")
			for i := 1; i <= 40; i++ {
				fmt.Fprintf(&b, "  - &m%d {<<: [*m%d, *m%d]}\n", i, i-1, i-1)
			}
			return b.String()
		}(),
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			// The budget bounds the work; how long it takes on this
			// machine is not asserted (it flaked at 25 s under -race on
			// a loaded 2-core box).
			_, err := Parse("c.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), "expands to more values than") {
				t.Errorf("Parse = %v, want the expansion limit", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}

	big := filepath.Join(dir, "big.yaml")
	data := append([]byte("# "), make([]byte, MaxFileSize)...)
	for i := range data[2:] {
		data[2+i] = 'x'
	}
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	want := big + ": file is larger than 32 MiB"
	if err == nil || err.Error() != want {
		t.Errorf("big file: %v, want %s", err, want)
	}

	// Exactly at the limit is allowed.
	if _, err := Parse("c.yaml", data[:MaxFileSize]); err != nil {
		t.Errorf("file of exactly MaxFileSize bytes: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "c.yaml", Line: 12, Column: 5, Field: "destinations[0].timeout", Message: "bad"}, "c.yaml:12:5: destinations[0].timeout: bad"},
		{Error{File: "c.yaml", Line: 1, Column: 1, Message: "bad"}, "c.yaml:1:1: bad"},
		{Error{File: "c.yaml", Message: "too large"}, "c.yaml: too large"},
		{Error{Field: "agents[0].id", Message: "bad"}, "agents[0].id: bad"},
		{Error{Line: 3, Column: 2, Message: "bad"}, "3:2: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestModelFieldsDecodable guards against a field added to the wal model
// with a type this decoder cannot fill: it would otherwise be found only
// when someone first writes it in a config file.
func TestModelFieldsDecodable(t *testing.T) {
	var check func(t reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		if reflect.PointerTo(typ).Implements(textUnmarshaler) {
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice:
			check(typ.Elem(), path+"[]")
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map key %s is not a string", path, typ.Key())
			}
			check(typ.Elem(), path+"{}")
		case reflect.Struct:
			fields := fieldsOf(typ)
			for _, name := range fields.names {
				check(typ.Field(fields.index[name]).Type, path+"."+name)
			}
		case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("%s: the config decoder cannot decode %s", path, typ)
		}
	}
	check(reflect.TypeFor[File](), "File")
}
