package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/webhookops/webhookops/admin"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the UI lives on the admin listener.
const Prefix = "/ui/"

// DocsPrefix is where the API docs live.
const DocsPrefix = "/api/docs/"

// maxForm bounds a form post.
const maxForm = 1 << 20

// pageSize is how many rows a list page shows.
const pageSize = 50

// countLimit bounds the event list's count: past it the count reads
// "10,000+" (admin.Server.CountEvents says how).
const countLimit = 10_000

// Config configures the UI. A zero field means the default.
type Config struct {
	// Admin is the admin server whose methods the UI calls. Required.
	Admin *admin.Server
	// IngestURL is the base URL providers send webhooks to
	// (https://hooks.example.com); the sources page shows
	// IngestURL/in/{slug}. Empty shows the path alone.
	IngestURL string
	Logger    *slog.Logger
	// SessionTTL is how long a login lasts at most; zero is 12 h.
	SessionTTL time.Duration
	// IdleTimeout ends a session nobody used for that long; zero is 1 h.
	IdleTimeout time.Duration
	// MaxSessions bounds the sessions held; zero is 10,000. When full, a
	// login ends the session used least recently.
	MaxSessions int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// UI is the operator UI's HTTP handler. Mount it with admin.Server.MountUI.
type UI struct {
	cfg      Config
	adm      *admin.Server
	log      *slog.Logger
	pages    *pages
	sessions *sessions
	logins   *admin.LoginLimiter
	h        http.Handler
}

// New builds the UI.
func New(cfg Config) (*UI, error) {
	if cfg.Admin == nil {
		return nil, errors.New("ui: Config.Admin is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.IngestURL = strings.TrimRight(cfg.IngestURL, "/")
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	u := &UI{
		cfg:      cfg,
		adm:      cfg.Admin,
		log:      cfg.Logger,
		pages:    p,
		sessions: newSessions(cfg.SessionTTL, cfg.IdleTimeout, cfg.MaxSessions, cfg.Now),
		logins:   admin.NewLoginLimiter(cfg.Now),
	}
	u.h = u.routes()
	return u, nil
}

func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.h.ServeHTTP(w, r) }

// authed is a page handler that runs for a logged-in session.
type authed func(w http.ResponseWriter, r *http.Request, c *call)

// call is one request's session and principal.
type call struct {
	p    admin.Principal
	sess *session
}

func (u *UI) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /ui/login", u.loginPage)
	mux.HandleFunc("POST /ui/login", u.login)
	mux.Handle("POST /ui/logout", u.auth(u.logout, false))

	get := func(pattern string, h authed) { mux.Handle("GET "+pattern, u.auth(h, false)) }
	post := func(pattern string, h authed) { mux.Handle("POST "+pattern, u.auth(h, true)) }
	get("/ui/{$}", u.dashboard)
	get("/ui/events", u.events)
	get("/ui/events/{id}", u.event)
	get("/ui/events/{id}/body", u.eventBody)
	post("/ui/events/{id}/replay", u.replayEvent)
	get("/ui/replays", u.replays)
	get("/ui/replays/{id}", u.replay)
	post("/ui/replays", u.startReplay)
	get("/ui/destinations", u.destinations)
	get("/ui/destinations/{slug}/dead-letters", u.deadLetters)
	post("/ui/destinations/{slug}/dead-letters/redrive", u.redrive)
	post("/ui/destinations/{slug}/pause", u.setPaused(true))
	post("/ui/destinations/{slug}/resume", u.setPaused(false))
	post("/ui/destinations/{slug}/signing-secret", u.rotateSigningSecret)
	get("/ui/agents", u.agents)
	post("/ui/agents", u.enroll)
	post("/ui/agents/{id}/secret", u.rotateAgent)
	post("/ui/agents/{id}/revoke", u.revokeAgent)
	get("/ui/forwards", u.forwards)
	post("/ui/forwards", u.createForward)
	post("/ui/forwards/delete", u.deleteForward)
	get("/ui/sources", u.sources)
	get("/ui/audit", u.audit)

	get("/api/docs/{$}", u.docsIndex)
	get("/api/docs/openapi.json", u.docsSpec)
	get("/api/docs/swagger-initializer.js", u.docsInit)
	mux.Handle("GET /api/docs/", u.auth(u.docsAsset, false))

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, nil, &admin.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no page " + r.URL.Path})
	})
	return secureHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// secureHeaders sets what every answer carries: a CSP that allows only
// this origin's scripts and styles (no inline code), no framing, no
// sniffing, no caching of pages that show events.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		if strings.HasPrefix(r.URL.Path, DocsPrefix) {
			// Swagger UI sets element styles from script and draws its
			// icons from data: URLs; scripts still come from here only.
			hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		} else {
			hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		}
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	v := fmt.Sprintf("private, max-age=%d", int(d.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", v)
		h.ServeHTTP(w, r)
	})
}

// auth runs h for a valid session whose token is still valid; anything
// else goes to the login page (GET) or is refused (POST). write refuses a
// read-only token, whose pages show no write buttons anyway.
func (u *UI) auth(h authed, write bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		sess := u.sessions.get(r)
		var p admin.Principal
		ok := sess != nil
		if ok {
			p, ok = u.adm.Authenticate(sess.token)
			if !ok {
				u.sessions.end(sess) // the token was revoked
			}
		}
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			u.fail(w, r, nil, &admin.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "your session ended; log in again"})
			return
		}
		c := &call{p: p, sess: sess}
		if write && p.ReadOnly() {
			u.fail(w, r, c, &admin.Error{Status: http.StatusForbidden, Code: "forbidden", Message: "token " + p.Name() + " is read-only"})
			return
		}
		h(w, r, c)
	})
}

// fail renders an error page with the API's status and message.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, c *call, err error) {
	e := admin.ErrorOf(err)
	if e.Status >= 500 {
		u.log.Error("ui request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	u.render(w, r, c, e.Status, "error", "Error", e)
}

// ctx bounds what a page asks of the destination actors.
func pageCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 5*time.Second)
}
