package ui

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/webhookops/webhookops/wal"
)

// The browser tests drive a real Chromium (Debian's chromium package) with
// chromedp: one browser for the package, a fresh browser context (its own
// cookies and storage) per test. They never skip on their own: without
// Chromium they fail, unless WEBHOOKOPS_UI_NO_BROWSER=1 says on purpose
// that this run has no browser (CI never sets it).
const noBrowserEnv = "WEBHOOKOPS_UI_NO_BROWSER"

var writeScreenshots = flag.Bool("screenshots", false, "write the dashboard and event page screenshots to docs/ (go test ./admin/ui -run TestScreenshots -screenshots)")

var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserStop   func()
	browserErr    error
	browserDir    string
	browserStderr strings.Builder
)

// chromiumPath finds the browser: $CHROMIUM, else chromium on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (apt-get install -y chromium)")
}

func launchBrowser() {
	path, err := chromiumPath()
	if err != nil {
		browserErr = err
		return
	}
	if browserDir, err = os.MkdirTemp("", "webhookops-ui-chromium-"); err != nil {
		browserErr = err
		return
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(browserDir),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true), // root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&syncWriter{w: &browserStderr}),
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		allocCancel()
		browserErr = fmt.Errorf("starting %s: %w\n%s", path, err, browserStderr.String())
		return
	}
	browserCtx = ctx
	browserStop = func() {
		cancel()
		allocCancel()
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func closeBrowser() {
	if browserStop != nil {
		browserStop()
	}
	if browserDir != "" {
		os.RemoveAll(browserDir)
	}
}

// tab opens a fresh browser context for one test, bounded in time.
func tab(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv(noBrowserEnv) == "1" {
		t.Skipf("%s=1: this run has no browser on purpose", noBrowserEnv)
	}
	browserOnce.Do(launchBrowser)
	if browserErr != nil {
		t.Fatalf("the UI tests need Chromium: %v (or set %s=1 to skip them on purpose)", browserErr, noBrowserEnv)
	}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	// A script dialog (alert, confirm) would mean a page ran code it was
	// never meant to: fail, and close it so the test does not hang.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			t.Errorf("a script opened a %s dialog: %q", ev.Type, ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	tctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(tcancel)
	return tctx
}

// run runs the steps and fails the test with what the page shows when one
// fails.
func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
		t.Fatalf("%v\nat %s:\n%s", err, loc, body)
	}
}

// waitLocation waits until the tab's URL holds sub: a navigation started
// by a click has committed.
func waitLocation(sub string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			loc, err := chromedp.Location()(ctx, tg)
			if err == nil && strings.Contains(loc, sub) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the page never reached a URL with %q (at %s): %w", sub, loc, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var s string
	run(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var err error
		s, err = chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)(ctx, tg)
		return err
	}))
	return s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// uiLogin logs in through the login page, starting from a page that needs
// a session, and waits for where it lands.
func uiLogin(t *testing.T, ctx context.Context, e *node, token, path, waitFor string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(e.srv.URL+path),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS(waitFor)),
	)
}

// confirm answers the <dialog> the script opens for a destructive form.
func confirm(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("#confirm[open] #confirm-ok")))
	if got := text(t, ctx, "#confirm-text"); !strings.Contains(got, want) {
		t.Fatalf("confirm dialog says %q, want %q in it", got, want)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#confirm-ok")))
}

// TestBrowserDeadLetterFixRedrive is the 3 a.m. path: log in, find the
// dead-lettered event, read why it failed, fix the receiver, redrive it
// and see it delivered.
func TestBrowserDeadLetterFixRedrive(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	sk.failing.Store(true)
	secret := e.setup(sk, 2)
	id := e.ingest(secret, "ord-1001", "order.created", `{"order":1001}`)
	waitFor(t, 10*time.Second, "the event to be dead-lettered", func() bool { return e.event(id).Status == "dead_lettered" })

	uiLogin(t, ctx, e, adminToken, "/ui/", "#chart")
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`header nav a[href="/ui/events"]`)),
		chromedp.WaitVisible(chromedp.CSS("#apply-filter")),
		chromedp.SetValue(chromedp.CSS("#status"), "dead_lettered"),
		chromedp.Click(chromedp.CSS("#apply-filter")),
		// The unfiltered list shows the same row and count: wait for the
		// filtered page, or the next click lands on a page being replaced.
		waitLocation("status=dead_lettered"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+id+`"]`)),
	)
	if n := text(t, ctx, "#event-count"); n != "1" {
		t.Fatalf("dead-lettered count %q", n)
	}
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] a.ev`)),
		chromedp.WaitVisible(chromedp.CSS("#delivery-app .timeline")),
	)
	timeline := text(t, ctx, "#delivery-app")
	for _, want := range []string{"dead_lettered", "2 attempts", "#1", "#2", "HTTP 503", "receiver is down for maintenance"} {
		if !strings.Contains(timeline, want) {
			t.Fatalf("attempts timeline lacks %q:\n%s", want, timeline)
		}
	}

	sk.failing.Store(false) // the fix
	run(t, ctx,
		chromedp.Click(chromedp.CSS(`header nav a[href="/ui/destinations"]`)),
		chromedp.WaitVisible(chromedp.CSS("#dest-app a.dead")),
		chromedp.Click(chromedp.CSS("#dest-app a.dead")),
		chromedp.WaitVisible(chromedp.CSS(`#dead-letters input[value="`+id+`"]`)),
		chromedp.Click(chromedp.CSS(`#dead-letters input[value="`+id+`"]`)),
		chromedp.Click(chromedp.CSS("#redrive-chosen")),
	)
	confirm(t, ctx, "Redrive the chosen dead letters of app")
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("#replay-status .st-completed")))
	if got := text(t, ctx, "#replay-counts"); !strings.HasPrefix(got, "1 delivered, 0 failed, of 1") {
		t.Fatalf("replay counts %q", got)
	}
	run(t, ctx,
		chromedp.Navigate(e.srv.URL+"/ui/events/"+id),
		chromedp.WaitVisible(chromedp.CSS("#delivery-app h3 .st-delivered")),
	)
	if timeline := text(t, ctx, "#delivery-app"); !strings.Contains(timeline, "3 attempts") || !strings.Contains(timeline, "HTTP 200") {
		t.Fatalf("after the redrive:\n%s", timeline)
	}
	if sk.accepted() != 1 {
		t.Fatalf("the receiver got %d deliveries, want 1", sk.accepted())
	}
}

// TestBrowserBulkReplayByFilter replays the events of one type, with the
// keyboard: "/" to search, Escape to back out of the dialog once.
func TestBrowserBulkReplayByFilter(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	for i := range 3 {
		e.ingest(secret, fmt.Sprintf("o-%d", i), "order.created", `{}`)
	}
	e.ingest(secret, "r-1", "refund.created", `{}`)
	e.ingest(secret, "r-2", "refund.issued", `{}`)
	waitFor(t, 10*time.Second, "five deliveries", func() bool { return sk.accepted() == 5 })

	uiLogin(t, ctx, e, adminToken, "/ui/events", "#events")
	run(t, ctx,
		chromedp.KeyEvent("/"),
	)
	if id := eval[string](t, ctx, `document.activeElement.id`); id != "search" {
		t.Fatalf("/ focused %q, want the search box", id)
	}
	if v := eval[string](t, ctx, `document.activeElement.value`); v != "" {
		t.Fatalf("the / went into the search box: %q", v)
	}
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="event_type"]`), "refund.*"),
		chromedp.Click(chromedp.CSS("#apply-filter")),
		chromedp.WaitVisible(chromedp.CSS("#replay-matching")),
	)
	if n := text(t, ctx, "#event-count"); n != "2" {
		t.Fatalf("refunds counted %q", n)
	}
	// Escape closes the dialog and sends nothing.
	run(t, ctx,
		chromedp.Click(chromedp.CSS("#replay-matching")),
		chromedp.WaitVisible(chromedp.CSS("#confirm[open]")),
		chromedp.KeyEvent("\x1b"),
		chromedp.WaitNotPresent(chromedp.CSS("#confirm[open]")),
	)
	var replays struct{ Items []struct{ ID string } }
	e.api("GET", "/api/v1/replays", nil, &replays, 200)
	if len(replays.Items) != 0 {
		t.Fatal("a dismissed dialog started a replay")
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#replay-matching")))
	confirm(t, ctx, "Replay every event matching this filter (2)")
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("#replay-status .st-completed")))
	if got := text(t, ctx, "#replay-counts"); !strings.HasPrefix(got, "2 delivered, 0 failed, of 2 deliveries (2 events)") {
		t.Fatalf("replay counts %q", got)
	}
	if p := eval[float64](t, ctx, `document.getElementById("replay-progress").value`); p != 2 {
		t.Fatalf("progress %v", p)
	}
	if sk.accepted() != 7 {
		t.Fatalf("the receiver got %d deliveries, want 5 + 2 replayed", sk.accepted())
	}
}

// TestBrowserEnrollAgentAndCopy enrolls an agent and copies the agentd
// command to the clipboard.
func TestBrowserEnrollAgentAndCopy(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true}, Setting: cdpbrowser.PermissionSettingGranted,
			Origin: e.srv.URL, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	uiLogin(t, ctx, e, adminToken, "/ui/agents", "#enroll")
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#agent-id"), "office-nas"),
		chromedp.SendKeys(chromedp.CSS("#agent-targets"), "127.0.0.1:5432, 10.0.0.5:443"),
		chromedp.Click(chromedp.CSS("#enroll-submit")),
		chromedp.WaitVisible(chromedp.CSS("#enroll-command")),
	)
	cmd := text(t, ctx, "#enroll-command")
	if !strings.HasPrefix(cmd, "agentd join --tunnel gw.example:9700 --id office-nas --secret ") ||
		!strings.HasSuffix(cmd, "--server-fingerprint sha256:00ff --allow 127.0.0.1:5432 --allow 10.0.0.5:443") {
		t.Fatalf("command %q", cmd)
	}
	run(t, ctx,
		chromedp.Click(chromedp.CSS("#copy-command")),
		chromedp.WaitVisible(chromedp.CSS("#copy-command.copied")),
	)
	clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if clip != cmd {
		t.Fatalf("clipboard %q, want the command %q", clip, cmd)
	}
	// The agent is listed, offline until it joins.
	run(t, ctx,
		chromedp.Navigate(e.srv.URL+"/ui/agents"),
		chromedp.WaitVisible(chromedp.CSS("#agent-office-nas")),
	)
	if row := text(t, ctx, "#agent-office-nas"); !strings.Contains(row, "offline") || !strings.Contains(row, "10.0.0.5:443") {
		t.Fatalf("agent row %q", row)
	}
}

// TestBrowserReadOnlySession: a read-only token sees the pages and no
// write buttons.
func TestBrowserReadOnlySession(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	id := e.ingest(secret, "k-1", "order.created", `{}`)
	e.api("POST", "/api/v1/agents/nas/enrollment", nil, nil, 201)

	uiLogin(t, ctx, e, e.readTok, "/ui/", "#chart")
	if who := text(t, ctx, "#user"); who != "viewer read-only" {
		t.Fatalf("user %q", who)
	}
	for _, p := range []string{"/ui/", "/ui/events?source=shop", "/ui/events/" + id, "/ui/destinations", "/ui/destinations/app/dead-letters", "/ui/agents", "/ui/forwards", "/ui/replays", "/ui/sources", "/ui/audit"} {
		run(t, ctx, chromedp.Navigate(e.srv.URL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		n := eval[int](t, ctx, `document.querySelectorAll('form[method=post]:not([action="/ui/logout"]), button.write, [data-confirm]').length`)
		if n != 0 {
			t.Errorf("%s: %d write controls for a read-only session", p, n)
		}
	}
}

// TestBrowserScriptBodyRendersAsText: a body carrying <script> and an
// onerror handler shows as text and runs nothing.
func TestBrowserScriptBodyRendersAsText(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	payload := `<script>window.pwned=1;alert("xss")</script><img src=x onerror="window.pwned=2;alert(2)">`
	id := e.ingest(secret, `<svg onload=alert(3)>`, `<script>alert(4)</script>`, payload)

	uiLogin(t, ctx, e, adminToken, "/ui/events/"+id, "#body")
	if got := text(t, ctx, "#body"); got != payload {
		t.Fatalf("body shows %q, want the raw text %q", got, payload)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("main script, main img, main svg:not(.chart)").length`); n != 0 {
		t.Fatalf("%d elements made from the body", n)
	}
	run(t, ctx, chromedp.Navigate(e.srv.URL+"/ui/events"), chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+id+`"]`)))
	if got := eval[string](t, ctx, `typeof window.pwned`); got != "undefined" {
		t.Fatalf("the body's script ran: window.pwned is %s", got)
	}
}

// TestBrowserLiveTail: with the live tail on, a new event appears at the
// top of the list without a reload.
func TestBrowserLiveTail(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	sk := newSink(t)
	secret := e.setup(sk, 3)
	first := e.ingest(secret, "t-1", "order.created", `{}`)
	uiLogin(t, ctx, e, adminToken, "/ui/events", `tr[data-id="`+first+`"]`)
	run(t, ctx, chromedp.Click(chromedp.CSS("#live")))
	second := e.ingest(secret, "t-2", "order.created", `{}`)
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#event-rows tr.new[data-id="`+second+`"]`)))
	if top := eval[string](t, ctx, `document.querySelector("#event-rows tr").dataset.id`); top != second {
		t.Fatalf("top row %s, want the new event %s", top, second)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#event-rows tr").length`); n != 2 {
		t.Fatalf("%d rows, want 2 (no row twice)", n)
	}
}

// TestBrowserLogout: after logout the pages ask for a login again.
func TestBrowserLogout(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	uiLogin(t, ctx, e, adminToken, "/ui/sources", "#sources")
	run(t, ctx,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(e.srv.URL+"/ui/events"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	)
	if loc := eval[string](t, ctx, `location.pathname + location.search`); loc != "/ui/login?next=%2Fui%2Fevents" {
		t.Fatalf("after logout /ui/events went to %s", loc)
	}
	if c := eval[string](t, ctx, `document.cookie`); c != "" {
		t.Fatalf("a script can read cookies %q (HttpOnly?)", c)
	}
}

// TestBrowserAPIDocs: Swagger UI renders this node's document under the
// page's CSP, from embedded assets.
func TestBrowserAPIDocs(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{})
	uiLogin(t, ctx, e, adminToken, "/api/docs/", "#swagger-ui .information-container")
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS(`#operations-events-getEvents`)))
	if title := text(t, ctx, "#swagger-ui .information-container .title"); !strings.Contains(title, "WebhookOps admin API") {
		t.Fatalf("docs title %q", title)
	}
}

// TestScreenshots renders the dashboard and an event page; with
// -screenshots it writes them to docs/ for the README.
func TestScreenshots(t *testing.T) {
	ctx := tab(t)
	e := startNode(t, nodeOpts{seed: seedHour})
	sk := newSink(t)
	secret := e.setup(sk, 2)
	// A second receiver that is down, so a queue waits on the dashboard.
	down := newSink(t)
	down.failing.Store(true)
	e.api("POST", "/api/v1/destinations", map[string]any{"slug": "billing", "url": down.srv.URL, "allow_private_network": true,
		"max_attempts": 20, "backoff_base": "1m", "backoff_max": "10m"}, nil, http.StatusCreated)
	e.api("PUT", "/api/v1/sources/shop", map[string]any{"provider": "generic", "routes": []map[string]any{{"destination": "app"}, {"destination": "billing", "event_types": []string{"invoice.*"}}}}, nil, http.StatusOK)
	for i := range 4 {
		e.ingest(secret, fmt.Sprintf("inv-%d", i), "invoice.paid", `{}`)
	}
	for i := range 12 {
		e.ingest(secret, fmt.Sprintf("ord-%d", 2000+i), "order.created", fmt.Sprintf(`{"order":%d,"total":"%d.00","currency":"EUR"}`, 2000+i, 10+i*7))
	}
	waitFor(t, 10*time.Second, "deliveries", func() bool { return sk.accepted() == 16 })
	waitFor(t, 10*time.Second, "billing's first attempts", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d, err := e.adm.Destination(ctx, "billing")
		return err == nil && d.Stats.ConsecutiveFailures > 0
	})
	sk.failing.Store(true)
	id := e.ingest(secret, "ord-2012", "order.paid", `{"order":2012,"total":"99.00","currency":"EUR","customer":{"id":"cus_81","email":"ana@example.com"}}`)
	waitFor(t, 10*time.Second, "a dead letter", func() bool { return e.event(id).Status == "dead_lettered" })

	run(t, ctx, emulate(1280, 900))
	uiLogin(t, ctx, e, adminToken, "/ui/?hours=1", "#chart")
	dash := shot(t, ctx)
	run(t, ctx, chromedp.Navigate(e.srv.URL+"/ui/events/"+id), chromedp.WaitVisible(chromedp.CSS("#body")))
	ev := shot(t, ctx)
	if !*writeScreenshots {
		return
	}
	for name, png := range map[string][]byte{"dashboard.png": dash, "event.png": ev} {
		if err := os.WriteFile(filepath.Join("docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// seedHour stores an hour of made-up per-minute counts, so the dashboard
// screenshot shows a chart rather than one minute of test traffic.
func seedHour(db *wal.DB) {
	now := time.Now().Unix() / 60
	var rows [][5]int64
	for m := now - 59; m < now; m++ {
		i := m % 60
		recv := 40 + 25*((i*7)%11)/10 + (i%13)*2
		failed := (i % 17) / 5
		if i%29 == 3 {
			failed += 9
		}
		dead := int64(0)
		if i%23 == 7 {
			dead = 2
		}
		rows = append(rows, [5]int64{m, recv, recv - dead, failed, dead})
	}
	raw, _ := json.Marshal(map[string]any{"v": 1, "minutes": rows})
	b := db.NewBatch()
	b.PutConfig(wal.KindRollup, "minutes", json.RawMessage(raw))
	db.CommitWait(b)
}

func emulate(w, h int64) chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(w, h)
}

func shot(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 {
		t.Fatalf("screenshot of %d bytes", len(png))
	}
	return png
}
