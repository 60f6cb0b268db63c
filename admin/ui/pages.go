package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/webhookops/webhookops/admin"
)

// pages holds one template set per page, each the layout plus that page.
type pages struct {
	sets map[string]*template.Template
}

var funcs = template.FuncMap{
	"when":  fmtTime,
	"ago":   ago,
	"count": fmtCount,
	"comma": func(n int) string { return commas(int64(n)) },
	"ms":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " ms" },
	"join":  strings.Join,
	"pct": func(part, total int) int {
		if total <= 0 {
			return 0
		}
		return part * 100 / total
	},
	"iso": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	},
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04")
	},
}

func parsePages() (*pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", n, err)
		}
		p.sets[base] = t
	}
	return p, nil
}

// view is what every page's template gets.
type view struct {
	Title    string
	Nav      string // the active section
	User     string
	CanWrite bool
	LoggedIn bool
	Flash    string
	Refresh  int // seconds; 0 none (a running replay refreshes itself)
	Data     any
}

// render writes page name with data. It renders into a buffer first so a
// template error answers 500 rather than half a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, c *call, status int, name, title string, data any) {
	v := view{Title: title, Nav: name, Data: data}
	if c != nil {
		v.LoggedIn, v.User, v.CanWrite = true, c.p.Name(), !c.p.ReadOnly()
		v.Flash = c.sess.takeFlash()
	}
	if rv, ok := data.(interface{ refresh() int }); ok {
		v.Refresh = rv.refresh()
	}
	t := u.pages.sets[name]
	var buf bytes.Buffer
	if t == nil {
		u.log.Error("ui: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// A page that defines "fragment" is a piece of another page (the
	// live tail's rows), without the layout.
	entry := "layout.html"
	if t.Lookup("fragment") != nil {
		entry = "fragment"
	}
	if err := t.ExecuteTemplate(&buf, entry, v); err != nil {
		u.log.Error("ui: rendering failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// done answers a successful write: the message is shown once on the page
// it redirects to.
func (u *UI) done(w http.ResponseWriter, r *http.Request, c *call, to, flash string) {
	c.sess.setFlash(flash)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// --- login ---

type loginData struct {
	Next  string
	Error string
}

// safeNext keeps a post-login redirect on this listener's UI or docs.
func safeNext(next string) string {
	if (strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, DocsPrefix)) && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return Prefix
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if s := u.sessions.get(r); s != nil {
		if _, ok := u.adm.Authenticate(s.token); ok {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	u.render(w, r, nil, http.StatusOK, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		u.render(w, r, nil, http.StatusBadRequest, "login", "Log in", loginData{Next: Prefix, Error: "could not read the form"})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	addr := admin.ClientAddr(r)
	if d := u.logins.Wait(addr); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		u.render(w, r, nil, http.StatusTooManyRequests, "login", "Log in", loginData{Next: next,
			Error: fmt.Sprintf("too many failed logins from %s; try again in %s", addr, d.Round(time.Second))})
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	p, ok := u.adm.Authenticate(token)
	if !ok {
		u.logins.Failed(addr)
		u.adm.RefuseLogin(r, token)
		u.render(w, r, nil, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "that token is not valid (revoked, mistyped or from another node)"})
		return
	}
	u.logins.Succeeded(addr)
	val, _ := u.sessions.start(token)
	http.SetCookie(w, cookie(r, val, int(u.cfg.SessionTTL.Seconds())))
	u.adm.AuditSession("ui.login", p, r)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, c *call) {
	u.sessions.end(c.sess)
	http.SetCookie(w, cookie(r, "", -1))
	u.adm.AuditSession("ui.logout", c.p, r)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// --- formatting ---

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d ago"
}

// commas writes n with thousands separators: 10,000.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtCount writes a bounded count: "10,000+" when the count stopped there.
func fmtCount(c admin.EventCount) string {
	if c.More {
		return commas(int64(c.N)) + "+"
	}
	return commas(int64(c.N))
}

// query rebuilds a page's query string with one key changed.
func query(q url.Values, key, val string) string {
	out := url.Values{}
	for k, v := range q {
		if len(v) > 0 && v[0] != "" {
			out.Set(k, v[0])
		}
	}
	if val == "" {
		out.Del(key)
	} else {
		out.Set(key, val)
	}
	if len(out) == 0 {
		return ""
	}
	return "?" + out.Encode()
}

// parseFormTime reads a datetime-local input (taken as UTC) or RFC 3339.
func parseFormTime(field, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &admin.Error{Status: http.StatusBadRequest, Code: "invalid_query", Field: field, Message: fmt.Sprintf("%q is not a time (2026-01-02T15:04, UTC)", v)}
}
