package admin

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// LoginLimiter slows down guessing: after LoginFreeFailures failed
// authentications from one address within LoginWindow, that address must
// wait, twice as long after each further failure (capped at LoginMaxWait).
// Random tokens are 256 bits, so this is about log noise and weak
// --admin-token values, not the random ones. The API (bearer tokens) and
// the operator UI's login form each use one.
type LoginLimiter struct {
	now func() time.Time

	mu sync.Mutex // guards m
	m  map[string]*loginFailures
}

type loginFailures struct {
	n     int
	last  time.Time
	until time.Time // no attempt from this address before
}

// Limits of a LoginLimiter.
const (
	LoginFreeFailures = 5
	LoginWindow       = 15 * time.Minute
	LoginMaxWait      = 5 * time.Minute
	loginMaxAddrs     = 10_000
)

// NewLoginLimiter returns an empty limiter; now is its clock (nil is
// time.Now).
func NewLoginLimiter(now func() time.Time) *LoginLimiter {
	if now == nil {
		now = time.Now
	}
	return &LoginLimiter{now: now, m: map[string]*loginFailures{}}
}

// ClientAddr is the address a request's failures count against: the
// peer's IP, without its port.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Wait answers how long addr must still wait before an attempt.
func (l *LoginLimiter) Wait(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[addr]
	if f == nil {
		return 0
	}
	return max(f.until.Sub(l.now()), 0)
}

// Failed records a failed attempt from addr.
func (l *LoginLimiter) Failed(addr string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[addr]
	if f == nil || now.Sub(f.last) > LoginWindow {
		if len(l.m) >= loginMaxAddrs {
			for k, o := range l.m {
				if now.Sub(o.last) > LoginWindow || o.until.Before(now) {
					delete(l.m, k)
				}
			}
		}
		f = &loginFailures{}
		l.m[addr] = f
	}
	f.n++
	f.last = now
	if f.n >= LoginFreeFailures {
		f.until = now.Add(LoginDelay(f.n))
	}
}

// LoginDelay is the wait after n failures: one second at the first one
// past the free ones, doubling, at most LoginMaxWait.
func LoginDelay(n int) time.Duration {
	if n < LoginFreeFailures {
		return 0
	}
	d := time.Second << min(n-LoginFreeFailures, 20)
	return min(d, LoginMaxWait)
}

// Succeeded forgets addr's failures.
func (l *LoginLimiter) Succeeded(addr string) {
	l.mu.Lock()
	delete(l.m, addr)
	l.mu.Unlock()
}
