package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// CookieName is the session cookie.
const CookieName = "webhookops_session"

// session is one login. The cookie carries a random id; the token stays
// here, in memory, and is checked again on every request.
type session struct {
	key     [sha256.Size]byte // sha256 of the cookie value
	token   string
	created time.Time

	mu    sync.Mutex // guards the fields below
	seen  time.Time
	flash string // shown once on the next page
}

func (s *session) takeFlash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (s *session) setFlash(f string) {
	s.mu.Lock()
	s.flash = f
	s.mu.Unlock()
}

// sessions holds the logins in memory: a restart logs everyone out, and
// logout or a revoked token ends a session at once (a signed cookie could
// do neither).
type sessions struct {
	ttl, idle time.Duration
	max       int
	now       func() time.Time

	mu sync.Mutex // guards m
	m  map[[sha256.Size]byte]*session
}

func newSessions(ttl, idle time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, idle: idle, max: max, now: now, m: map[[sha256.Size]byte]*session{}}
}

// expired reports whether s is over its lifetime or idle time at now.
func (ss *sessions) expired(s *session, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.created) >= ss.ttl || now.Sub(s.seen) >= ss.idle
}

// start makes a session for token and answers the cookie value. Expired
// sessions are dropped first; if it is still full, the one used least
// recently goes.
func (ss *sessions) start(token string) (string, *session) {
	var raw [32]byte
	rand.Read(raw[:])
	val := base64.RawURLEncoding.EncodeToString(raw[:])
	now := ss.now()
	s := &session{key: sha256.Sum256([]byte(val)), token: token, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= ss.max {
		var oldest *session
		for k, o := range ss.m {
			if ss.expired(o, now) {
				delete(ss.m, k)
				continue
			}
			if oldest == nil || o.seen.Before(oldest.seen) {
				oldest = o
			}
		}
		if len(ss.m) >= ss.max && oldest != nil {
			delete(ss.m, oldest.key)
		}
	}
	ss.m[s.key] = s
	return val, s
}

// get finds the request's live session and marks it used.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	key := sha256.Sum256([]byte(c.Value))
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[key]
	if s == nil {
		return nil
	}
	if ss.expired(s, now) {
		delete(ss.m, key)
		return nil
	}
	s.mu.Lock()
	s.seen = now
	s.mu.Unlock()
	return s
}

func (ss *sessions) end(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
}

func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// cookie is the session cookie: HttpOnly, SameSite=Strict, Secure when the
// request came over TLS, scoped to the whole listener (the UI and the API
// docs).
func cookie(r *http.Request, val string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: val, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}
