package model

import (
	"strings"
	"testing"
)

func TestMatchEventType(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		typ      string
		want     bool
	}{
		{nil, "anything", true},
		{nil, "", true},
		{[]string{}, "x", true},
		{[]string{"*"}, "invoice.paid", true},
		{[]string{"*"}, "", true},
		{[]string{"issues.*"}, "issues", true},
		{[]string{"issues.*"}, "issues.opened", true},
		{[]string{"issues.*"}, "issues.labeled.extra", true},
		{[]string{"issues.*"}, "issuesx", false},
		{[]string{"issues.*"}, "issue", false},
		{[]string{"issues.*"}, "pull_request.opened", false},
		{[]string{"issues.*"}, "", false},
		{[]string{"orders/*"}, "orders/create", true},
		{[]string{"orders/*"}, "orders", true},
		{[]string{"orders/*"}, "orders.create", false},
		{[]string{"invoice.paid"}, "invoice.paid", true},
		{[]string{"invoice.paid"}, "invoice.paid.late", false},
		{[]string{"invoice.paid"}, "Invoice.Paid", false},
		{[]string{"invoice*"}, "invoice.paid", false},
		{[]string{"invoice*"}, "invoice*", true},
		{[]string{"a.*.c"}, "a.b.c", false},
		{[]string{"push", "issues.*"}, "issues.closed", true},
		{[]string{"push", "issues.*"}, "release", false},
		{[]string{""}, "", true},
		{[]string{""}, "x", false},
	} {
		if got := MatchEventType(tc.patterns, tc.typ); got != tc.want {
			t.Errorf("MatchEventType(%q, %q) = %v, want %v", tc.patterns, tc.typ, got, tc.want)
		}
	}
}

func TestProviderValid(t *testing.T) {
	for _, p := range []Provider{"generic", "github", "shopify", "slack", "stripe"} {
		if !p.Valid() {
			t.Errorf("Provider(%q).Valid() = false", p)
		}
	}
	for _, p := range []Provider{"", "GitHub", "paypal", "stripe "} {
		if p.Valid() {
			t.Errorf("Provider(%q).Valid() = true", p)
		}
	}
}

func TestSourceTargets(t *testing.T) {
	s := Source{Routes: []Route{
		{Destination: "a", EventTypes: []string{"issues.*"}},
		{Destination: "b"},
		{Destination: "a"},
		{Destination: "c", EventTypes: []string{"push"}},
	}}
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"issues.opened", []string{"a", "b"}},
		{"push", []string{"b", "a", "c"}},
		{"", []string{"b", "a"}},
	} {
		got := s.Targets(tc.typ)
		if len(got) != len(tc.want) {
			t.Fatalf("Targets(%q) = %q, want %q", tc.typ, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("Targets(%q) = %q, want %q", tc.typ, got, tc.want)
			}
		}
	}
}

func TestEnumStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{OrderingOrdered.String(), "ordered"},
		{ModeAgent.String(), "agent"},
		{VerifySignature.String(), "signature"},
		{VerifyNone.String(), "none"},
		{ProviderStripe.String(), "stripe"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

func TestForwardListenBeyondLoopbackNeedsPublic(t *testing.T) {
	for _, tc := range []struct {
		listen string
		public bool
		ok     bool
	}{
		{"127.0.0.1:5432", false, true},
		{"127.9.9.9:5432", false, true},
		{"[::1]:5432", false, true},
		{"localhost:5432", false, true},
		{"[::ffff:127.0.0.1]:5432", false, true},
		{"[::ffff:10.0.0.1]:5432", false, false},
		{"0.0.0.0:5432", false, false},
		{"[::]:5432", false, false},
		{"192.168.1.10:5432", false, false},
		{"db.example:5432", false, false},
		{"0.0.0.0:5432", true, true},
	} {
		err := Forward{Listen: tc.listen, Agent: "dev", Target: "db:5432", Public: tc.public}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("listen %q public %v: %v, want ok=%v", tc.listen, tc.public, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "public") {
			t.Errorf("listen %q: error does not say how to allow it: %v", tc.listen, err)
		}
	}
}

func TestAgentTarget(t *testing.T) {
	for u, want := range map[string]string{
		"https://billing.internal/in": "billing.internal:443",
		"http://billing.internal/in":  "billing.internal:80",
		"http://10.0.0.5:8080/x":      "10.0.0.5:8080",
		"https://[fd00::1]/x":         "[fd00::1]:443",
		"ftp://billing.internal/in":   "",
		"https:///nohost":             "",
	} {
		got, err := Destination{URL: u}.AgentTarget()
		if got != want || (err == nil) != (want != "") {
			t.Errorf("AgentTarget(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
}

// TestKeepMaskedCredentials: what a read showed, sent back with or without
// edits around the masks, keeps the values behind them; the mask with
// nothing behind it stays for Validate to refuse.
func TestKeepMaskedCredentials(t *testing.T) {
	cur := Destination{Slug: "d", URL: "https://h.example/hook?token=t1&x=1&token=t2&flag#frag",
		Headers: map[string]string{"Authorization": "Bearer a", "X-Team": "payments"}}
	cases := []struct {
		name, url, want string
		wantValid       bool
	}{
		{"what a read showed", MaskURL(cur.URL), cur.URL, true},
		{"path and a value edited", "https://h.example/v2?token=****&x=2&token=****&flag=****#frag",
			"https://h.example/v2?token=t1&x=2&token=t2&flag#frag", true},
		{"second token dropped", "https://h.example/hook?token=****", "https://h.example/hook?token=t1", true},
		{"new token set in clear", "https://h.example/hook?token=new&x=****", "https://h.example/hook?token=new&x=1", true},
		{"no query", "https://h.example/hook", "https://h.example/hook", true},
		{"a mask with nothing behind it", "https://h.example/hook?other=****", "https://h.example/hook?other=****", false},
		{"a third token", "https://h.example/hook?token=****&token=****&token=****",
			"https://h.example/hook?token=t1&token=t2&token=****", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Destination{Slug: "d", URL: tc.url, Headers: map[string]string{"Authorization": Masked, "X-Team": "billing"}}
			got := d.KeepMaskedCredentials(cur)
			if got.URL != tc.want || got.Headers["Authorization"] != "Bearer a" || got.Headers["X-Team"] != "billing" {
				t.Fatalf("got %s %v, want %s", got.URL, got.Headers, tc.want)
			}
			if err := got.Validate(); (err == nil) != tc.wantValid {
				t.Fatalf("Validate: %v, want valid %v", err, tc.wantValid)
			}
		})
	}
}
