package ui

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/wal"
)

func TestLoginCookieAndLogout(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			e := startNode(t, nodeOpts{tls: tls})
			b := e.newBrowser()

			// No session: pages send you to the login page, keeping where
			// you were going; a POST is refused.
			a := b.get("/ui/events?status=pending")
			if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/login?next="+url.QueryEscape("/ui/events?status=pending") {
				t.Fatalf("no session: %d %q", a.status, a.header.Get("Location"))
			}
			if a := b.post("/ui/destinations/app/pause", url.Values{}); a.status != http.StatusUnauthorized {
				t.Fatalf("POST without a session: %d", a.status)
			}

			a = b.post("/ui/login", url.Values{"token": {adminToken}, "next": {"/ui/events?status=pending"}})
			if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/events?status=pending" {
				t.Fatalf("login: %d %q %s", a.status, a.header.Get("Location"), a.body)
			}
			sc := a.header.Get("Set-Cookie")
			for _, want := range []string{CookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
				if !strings.Contains(sc, want) {
					t.Errorf("cookie %q lacks %s", sc, want)
				}
			}
			if strings.Contains(sc, "Secure") != tls {
				t.Errorf("cookie %q: Secure must be set exactly over TLS (tls=%v)", sc, tls)
			}
			if strings.Contains(sc, adminToken) {
				t.Fatal("the cookie carries the token")
			}
			if a := b.get("/ui/"); a.status != http.StatusOK || !strings.Contains(a.body, "Dashboard") {
				t.Fatalf("dashboard after login: %d", a.status)
			}

			a = b.post("/ui/logout", url.Values{})
			if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
				t.Fatalf("logout: %d %q", a.status, a.header.Get("Set-Cookie"))
			}
			if a := b.get("/ui/"); a.status != http.StatusSeeOther {
				t.Fatalf("after logout: %d", a.status)
			}
			// Audit entries of sessions are written in the background.
			var page admin.Page[struct{ Action, Actor string }]
			waitFor(t, 10*time.Second, "the login and logout in the audit log", func() bool {
				e.api("GET", "/api/v1/audit?action=ui.*", nil, &page, http.StatusOK)
				return len(page.Items) == 2
			})
			if page.Items[0].Action != "ui.logout" || page.Items[1].Actor != "token:bootstrap" {
				t.Fatalf("login and logout audited as %+v", page.Items)
			}
		})
	}
}

func TestLoginNextStaysOnTheUI(t *testing.T) {
	for next, want := range map[string]string{
		"/ui/events":           "/ui/events",
		"/api/docs/":           "/api/docs/",
		"https://evil.example": "/ui/",
		"//evil.example/ui/":   "/ui/",
		"/ui/\\evil":           "/ui/",
		"/metrics":             "/ui/",
		"":                     "/ui/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestBadLoginIsAuditedAndSlowedDown(t *testing.T) {
	e := startNode(t, nodeOpts{})
	b := e.newBrowser()
	for i := range admin.LoginFreeFailures {
		a := b.post("/ui/login", url.Values{"token": {"whops_wrong"}})
		if a.status != http.StatusUnauthorized || !strings.Contains(a.body, "not valid") {
			t.Fatalf("bad token %d: %d", i, a.status)
		}
		if a.header.Get("Set-Cookie") != "" {
			t.Fatal("a bad login set a cookie")
		}
	}
	// Past the free failures, even the right token waits.
	a := b.post("/ui/login", url.Values{"token": {adminToken}})
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("after %d failures: %d", admin.LoginFreeFailures, a.status)
	}
	e.clock.advance(admin.LoginDelay(admin.LoginFreeFailures) + time.Second)
	b.login(adminToken)

	// Refusals are tallied: rows per interval for the bad token, each with
	// its count; together they count every refused login.
	var page admin.Page[struct {
		Detail map[string]string
	}]
	deadline := time.Now().Add(10 * time.Second)
	total := 0
	for {
		e.api("GET", "/api/v1/audit?action=auth.rejected", nil, &page, http.StatusOK)
		total = 0
		for _, it := range page.Items {
			n, _ := strconv.Atoi(it.Detail["count"])
			total += n
			if it.Detail["message"] != "POST /ui/login" {
				t.Fatalf("refused login audited as %+v", it)
			}
		}
		if total >= admin.LoginFreeFailures || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if total != admin.LoginFreeFailures {
		t.Fatalf("refused logins audited: %d, want %d: %+v", total, admin.LoginFreeFailures, page.Items)
	}
}

func TestSessionsExpireAndEndWithTheirToken(t *testing.T) {
	e := startNode(t, nodeOpts{})
	b := e.newBrowser()
	b.login(adminToken)
	e.clock.advance(29 * time.Minute)
	if a := b.get("/ui/"); a.status != http.StatusOK {
		t.Fatalf("within the idle time: %d", a.status)
	}
	e.clock.advance(31 * time.Minute)
	if a := b.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("idle past 30 min: %d, want a redirect to login", a.status)
	}
	// The absolute lifetime holds even for a session in constant use.
	b.login(adminToken)
	for range 12 * 3 {
		e.clock.advance(20 * time.Minute)
		b.get("/ui/")
	}
	if a := b.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("past 12 h: %d", a.status)
	}

	// Revoking the token ends its sessions at once.
	var tok admin.CreatedToken
	e.api("POST", "/api/v1/tokens", map[string]any{"name": "ops", "role": "admin"}, &tok, http.StatusCreated)
	b.login(tok.Secret)
	e.api("DELETE", "/api/v1/tokens/ops", nil, nil, http.StatusNoContent)
	if a := b.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("after the token was revoked: %d", a.status)
	}
	if n := e.ui.sessions.count(); n != 0 {
		t.Fatalf("%d sessions held after the revocation", n)
	}
}

func TestSessionsAreBounded(t *testing.T) {
	now := time.Now()
	ss := newSessions(time.Hour, time.Hour, 3, func() time.Time { return now })
	var vals []string
	for range 5 {
		v, _ := ss.start("tok")
		vals = append(vals, v)
		now = now.Add(time.Second)
	}
	if ss.count() != 3 {
		t.Fatalf("%d sessions, want 3", ss.count())
	}
	r, _ := http.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: vals[0]})
	if ss.get(r) != nil {
		t.Fatal("the least recently used session survived")
	}
	r, _ = http.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: vals[4]})
	if ss.get(r) == nil {
		t.Fatal("the newest session is gone")
	}
}

func TestSecurityHeadersAndCrossOriginPosts(t *testing.T) {
	e := startNode(t, nodeOpts{})
	b := e.newBrowser()
	a := b.get("/ui/login")
	if csp := a.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", a.header)
	}
	if strings.Contains(a.body, "<script>") || strings.Contains(a.body, " style=") || strings.Contains(a.body, "onclick") {
		t.Fatal("the page has inline script or style, which the CSP blocks")
	}
	b.login(adminToken)
	sk := newSink(t)
	e.setup(sk, 3)

	// A form posted from another site is refused before it does anything.
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		a := b.do("POST", "/ui/destinations/app/pause", url.Values{}, h)
		if a.status != http.StatusForbidden {
			t.Fatalf("cross-origin POST with %v: %d", h, a.status)
		}
	}
	a = b.do("POST", "/ui/login", url.Values{"token": {adminToken}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
	if a.status != http.StatusForbidden {
		t.Fatalf("cross-site login: %d (login CSRF)", a.status)
	}
	var d admin.DestinationOut
	e.api("GET", "/api/v1/destinations/app", nil, &d, http.StatusOK)
	if d.Paused {
		t.Fatal("a cross-origin POST paused the destination")
	}
	// The same POST from this origin works.
	a = b.do("POST", "/ui/destinations/app/pause", url.Values{}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if a.status != http.StatusSeeOther {
		t.Fatalf("same-origin POST: %d %s", a.status, a.body)
	}
	e.api("GET", "/api/v1/destinations/app", nil, &d, http.StatusOK)
	if !d.Paused {
		t.Fatal("pause did not pause")
	}
}

// TestBodiesRenderAsText: a webhook body and headers are whatever a sender
// posted; the page must show them as text.
func TestBodiesRenderAsText(t *testing.T) {
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	body := `{"note":"</pre><script>alert(document.cookie)</script><img src=x onerror=alert(1)>"}`
	id := e.ingest(secret, "xss-1", `<b onmouseover=alert(2)>order.created</b>`, body)
	b := e.newBrowser()
	b.login(adminToken)
	for _, path := range []string{"/ui/events/" + id, "/ui/events", "/ui/events?rows=1"} {
		a := b.get(path)
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d", path, a.status)
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<b onmouseover"} {
			if strings.Contains(a.body, raw) {
				t.Errorf("%s renders %q as markup", path, raw)
			}
		}
	}
	a := b.get("/ui/events/" + id)
	if !strings.Contains(a.body, "&lt;script&gt;alert(document.cookie)&lt;/script&gt;") {
		t.Fatalf("the body is not shown as text:\n%s", a.body)
	}
	dl := b.get("/ui/events/" + id + "/body")
	if dl.body != body || dl.header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(dl.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %q %v", dl.body, dl.header)
	}
}

func TestLargeBodyIsCappedOnScreen(t *testing.T) {
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	big := `"` + strings.Repeat("é", 50_000) + `"` // 100,002 bytes of JSON, multi-byte runes
	id := e.ingest(secret, "big-1", "order.created", big)
	b := e.newBrowser()
	b.login(adminToken)
	a := b.get("/ui/events/" + id)
	if !strings.Contains(a.body, "Showing the first 64 KB of 100,002 bytes") {
		t.Fatal("no truncation notice")
	}
	m := regexp.MustCompile(`(?s)<pre id="body" class="body">(.*?)</pre>`).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatal("no body on the page")
	}
	shown := html.UnescapeString(m[1])
	if len(shown) > bodyCap || len(shown) < bodyCap-4 || !strings.HasPrefix(shown, `"é`) || !utf8.ValidString(shown) {
		t.Fatalf("shown body: %d bytes", len(shown))
	}
	if dl := b.get("/ui/events/" + id + "/body"); dl.body != big {
		t.Fatalf("download has %d bytes, want %d", len(dl.body), len(big))
	}
}

// TestReadOnlySessionHasNoWriteButtons walks every page as a read-only
// token: each renders, none offers a write, and every write is refused.
func TestReadOnlySessionHasNoWriteButtons(t *testing.T) {
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	sk.failing.Store(true)
	secret := e.setup(sk, 1)
	id := e.ingest(secret, "k1", "order.created", `{}`)
	waitFor(t, 10*time.Second, "a dead letter", func() bool { return e.event(id).Status == admin.EventDeadLettered })
	var rec admin.Replay
	e.api("POST", "/api/v1/events/"+id+"/replay", nil, &rec, http.StatusAccepted)
	e.api("POST", "/api/v1/agents/nas/enrollment", map[string]any{"allowed_targets": []string{"127.0.0.1:5432"}}, nil, http.StatusCreated)

	pages := []string{"/ui/", "/ui/events", "/ui/events?status=dead_lettered", "/ui/events/" + id, "/ui/replays", "/ui/replays/" + rec.ID,
		"/ui/destinations", "/ui/destinations/app/dead-letters", "/ui/agents", "/ui/forwards", "/ui/sources", "/ui/audit"}
	posts := []string{"/ui/events/" + id + "/replay", "/ui/replays", "/ui/destinations/app/pause", "/ui/destinations/app/resume",
		"/ui/destinations/app/signing-secret", "/ui/destinations/app/dead-letters/redrive", "/ui/agents", "/ui/agents/nas/secret",
		"/ui/agents/nas/revoke", "/ui/forwards", "/ui/forwards/delete"}

	admin, ro := e.newBrowser(), e.newBrowser()
	admin.login(adminToken)
	ro.login(e.readTok)
	writeForm := regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]+)"`)
	for _, p := range pages {
		a := ro.get(p)
		if a.status != http.StatusOK {
			t.Fatalf("read-only %s: %d", p, a.status)
		}
		for _, m := range writeForm.FindAllStringSubmatch(a.body, -1) {
			if m[1] != "/ui/logout" {
				t.Errorf("read-only %s offers a write: %s", p, m[1])
			}
		}
		if strings.Contains(a.body, `class="write`) {
			t.Errorf("read-only %s shows a write button", p)
		}
		if a := admin.get(p); a.status != http.StatusOK {
			t.Fatalf("admin %s: %d", p, a.status)
		}
	}
	for _, p := range posts {
		if a := ro.post(p, url.Values{"id": {"x"}, "listen": {"127.0.0.1:1"}}); a.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: %d, want 403", p, a.status)
		}
	}
	// The admin session sees the writes the read-only one does not.
	if a := admin.get("/ui/destinations"); !strings.Contains(a.body, `action="/ui/destinations/app/pause"`) {
		t.Fatal("the admin session has no pause button")
	}
}

func TestEventCountIsBounded(t *testing.T) {
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		e.ingest(secret, k, "order.created", `{}`)
	}
	c, err := e.adm.CountEvents(admin.EventFilter{}, 3)
	if err != nil || c.N != 3 || !c.More || c.Looked != 0 {
		t.Fatalf("count with max 3 of 5: %+v %v", c, err)
	}
	c, err = e.adm.CountEvents(admin.EventFilter{IdempotencyKey: "c"}, 100)
	if err != nil || c.N != 1 || c.More {
		t.Fatalf("count of one key: %+v %v", c, err)
	}
	for c, want := range map[admin.EventCount]string{{N: 10_000, More: true}: "10,000+", {N: 999, Looked: 10_000}: "999", {N: 1234567}: "1,234,567", {}: "0"} {
		if got := fmtCount(c); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", c, got, want)
		}
	}
	b := e.newBrowser()
	b.login(adminToken)
	if a := b.get("/ui/events"); !strings.Contains(a.body, `<strong id="event-count">5</strong>`) {
		t.Fatal("event list count")
	}
}

func TestAPIDocs(t *testing.T) {
	e := startNode(t, nodeOpts{})
	b := e.newBrowser()
	if a := b.get("/api/docs/"); a.status != http.StatusSeeOther {
		t.Fatalf("docs without a session: %d", a.status)
	}
	b.login(adminToken)
	a := b.get("/api/docs/")
	if a.status != http.StatusOK || !strings.Contains(a.body, "swagger-ui-bundle.js") {
		t.Fatalf("docs: %d", a.status)
	}
	if a := b.get("/api/docs/openapi.json"); a.status != http.StatusOK || !strings.Contains(a.body, `"openapi":"3.1.0"`) {
		t.Fatalf("spec: %d %.100s", a.status, a.body)
	}
	for _, asset := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"} {
		if a := b.get("/api/docs/" + asset); a.status != http.StatusOK || len(a.body) < 100 {
			t.Fatalf("%s: %d, %d bytes", asset, a.status, len(a.body))
		}
	}
	if a := b.get("/api/docs/swagger-initializer.js"); !strings.Contains(a.body, `url: "openapi.json"`) {
		t.Fatal("the initializer does not point at this node's document")
	}
	if a := b.get("/api/docs"); a.status != http.StatusMovedPermanently && a.status != http.StatusTemporaryRedirect && a.status != http.StatusSeeOther {
		t.Fatalf("/api/docs without the slash: %d", a.status)
	}
}

func TestChartLayout(t *testing.T) {
	base := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	var mins []admin.MinuteCounts
	for i := range 60 {
		mins = append(mins, admin.MinuteCounts{Minute: base.Add(time.Duration(i) * time.Minute), Received: int64(i), Delivered: int64(i / 2)})
	}
	c := buildChart(mins)
	if len(c.Series) != 4 || c.Series[0].Total != 59*60/2 || c.Series[3].Total != 0 {
		t.Fatalf("series: %+v", c.Series)
	}
	pts := strings.Fields(c.Series[0].Points)
	if len(pts) != 60 || pts[0] != "48.0,180.0" || pts[59] != "712.0,78.5" {
		t.Fatalf("received points: first %s last %s (of %d)", pts[0], pts[len(pts)-1], len(pts))
	}
	if c.YTicks[2].Label != "100" || c.XTicks[0].Label != "15:00" {
		t.Fatalf("ticks: %+v %+v", c.YTicks, c.XTicks)
	}
	for m, want := range map[int64]int64{0: 1, 1: 1, 7: 10, 11: 20, 150: 200, 501: 1000} {
		if got := niceMax(m); got != want {
			t.Errorf("niceMax(%d) = %d, want %d", m, got, want)
		}
	}
	if c := buildChart(nil); len(c.XTicks) != 0 || len(c.Series) != 4 {
		t.Fatalf("empty chart: %+v", c)
	}
}

// TestRedriveAllMatching redrives by the form's filter: only the dead
// letters of that type go again.
func TestRedriveAllMatching(t *testing.T) {
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	sk.failing.Store(true)
	secret := e.setup(sk, 1)
	a := e.ingest(secret, "a", "invoice.paid", `{}`)
	o := e.ingest(secret, "o", "order.created", `{}`)
	waitFor(t, 10*time.Second, "two dead letters", func() bool {
		return e.event(a).Status == admin.EventDeadLettered && e.event(o).Status == admin.EventDeadLettered
	})
	sk.failing.Store(false)
	b := e.newBrowser()
	b.login(adminToken)
	if r := b.post("/ui/destinations/app/dead-letters/redrive", url.Values{"scope": {"selected"}}); r.status != http.StatusBadRequest {
		t.Fatalf("redrive of none chosen: %d", r.status)
	}
	if r := b.post("/ui/destinations/app/dead-letters/redrive", url.Values{"scope": {"filter"}, "since": {"yesterday"}}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "since") {
		t.Fatalf("a bad time: %d", r.status)
	}
	r := b.post("/ui/destinations/app/dead-letters/redrive", url.Values{"scope": {"filter"}, "event_type": {"invoice.*"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/ui/replays/rpl_") {
		t.Fatalf("redrive: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	waitFor(t, 10*time.Second, "the invoice delivered", func() bool { return e.event(a).Status == admin.EventDelivered })
	if page := b.get(r.header.Get("Location")); !strings.Contains(page.body, "dead letters of app") {
		t.Fatalf("replay page: %s", page.body)
	}
	if st := e.event(o).Status; st != admin.EventDeadLettered {
		t.Fatalf("the order, outside the filter, is %s", st)
	}
}

// TestCredentialsMaskedOnEveryPage: a destination's credentials (secret
// headers, URL query values) never appear on any page, to an admin or a
// read-only session, before or after they change (audit diffs included);
// the destinations page shows the URL with **** in place of its values.
func TestCredentialsMaskedOnEveryPage(t *testing.T) {
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 1)
	put := func(n string) {
		e.api("PUT", "/api/v1/destinations/app", map[string]any{"slug": "app", "url": sk.srv.URL + "/hook?token=q-secret-" + n + "&team=payments",
			"allow_private_network": true, "max_attempts": 1, "backoff_base": "10ms", "backoff_max": "20ms",
			"headers":        map[string]string{"Authorization": "Bearer auth-secret-" + n, "X-Vendor": "vendor-secret-" + n, "X-Team": "payments"},
			"secret_headers": []string{"X-Vendor"}}, nil, http.StatusOK)
	}
	put("1")
	put("2")
	id := e.ingest(secret, "k1", "order.created", `{}`)
	waitFor(t, 10*time.Second, "the delivery", func() bool { return e.event(id).Status == admin.EventDelivered })

	plains := []string{"q-secret-1", "auth-secret-1", "vendor-secret-1", "q-secret-2", "auth-secret-2", "vendor-secret-2"}
	pages := []string{"/ui/", "/ui/destinations", "/ui/events", "/ui/events/" + id, "/ui/audit", "/ui/sources"}
	adm, ro := e.newBrowser(), e.newBrowser()
	adm.login(adminToken)
	ro.login(e.readTok)
	for name, b := range map[string]*browser{"admin": adm, "read-only": ro} {
		for _, p := range pages {
			a := b.get(p)
			if a.status != http.StatusOK {
				t.Fatalf("%s %s: %d", name, p, a.status)
			}
			for _, plain := range plains {
				if strings.Contains(a.body, plain) {
					t.Fatalf("%s %s shows %q", name, p, plain)
				}
			}
		}
		if a := b.get("/ui/destinations"); !strings.Contains(a.body, "/hook?token=****&amp;team=****") {
			t.Fatalf("%s: the destinations page does not show the masked URL:\n%s", name, a.body)
		}
		if a := b.get("/ui/audit"); !strings.Contains(a.body, "secret values changed") {
			t.Fatalf("%s: the audit page does not show that the credentials changed", name)
		}
	}
	// The credentials are still there for deliveries.
	if r := sk.last(); r == nil || r.Header.Get("Authorization") != "Bearer auth-secret-2" || r.URL.Query().Get("token") != "q-secret-2" {
		t.Fatalf("the delivery lost its credentials: %v", r)
	}
}

// A filter few events match gets pages that stop looking once their work
// is spent: short, saying so, with an Older link that looks further, and
// every match reached by following it. A status filter reads its index
// and fills its page at once.
func TestShortPagesForRareFilters(t *testing.T) {
	const n = 25_000 // stripe sends events 77, 10,077 and 20,077
	e := startNode(t, nodeOpts{seed: func(db *wal.DB) { fillEvents(t, db, n) }})
	b := e.newBrowser()
	b.login(adminToken)
	path := "/ui/events?source=stripe"
	var rows, pages int
	for path != "" {
		a := b.get(path)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, a.status)
		}
		pages++
		found := strings.Count(a.body, `<td>stripe</td>`)
		rows += found
		next := regexp.MustCompile(`id="next-page" rel="next" href="([^"]+)"`).FindStringSubmatch(a.body)
		if next != nil && found < pageSize && !strings.Contains(a.body, `id="short-page"`) {
			t.Fatalf("page %d has %d rows and an Older link but does not say it stopped looking", pages, found)
		}
		path = ""
		if next != nil {
			path = html.UnescapeString(next[1])
		}
	}
	if rows != 3 || pages < 3 {
		t.Fatalf("source=stripe: %d rows over %d pages; want 3 rows over the 3 budgets 25,000 events need", rows, pages)
	}
	a := b.get("/ui/events?status=dead_lettered")
	if got := strings.Count(a.body, `<tr data-id=`); got != pageSize || strings.Contains(a.body, `id="short-page"`) {
		t.Fatalf("status=dead_lettered: %d rows on the first page, want a full page of %d", got, pageSize)
	}
	dead := 0 // fillEvents dead-letters every 100th (at 7) but the newest 300, still queued
	for j := 7; j < n-300; j += 100 {
		dead++
	}
	if !strings.Contains(a.body, `<strong id="event-count">`+strconv.Itoa(dead)+`</strong> matching events</p>`) {
		i := strings.Index(a.body, "event-count")
		t.Fatalf("the dead-lettered count is not the index's exact %d: %.120s", dead, a.body[max(i, 0):])
	}
}
