package tunnelproto

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"
	"time"
)

// proof computes the AUTH proof:
//
//	HMAC-SHA256(key = secret,
//	    authContext || u8(len(agentID)) || agentID || clientNonce || serverNonce || exporter)
//
// The server nonce makes it single-use and the TLS exporter value binds it to
// one TLS connection, so a proof captured from one connection is useless on
// any other.
func proof(secret []byte, agentID []byte, clientNonce, serverNonce *[nonceLen]byte, exporter []byte) [proofLen]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(authContext))
	m.Write([]byte{byte(len(agentID))})
	m.Write(agentID)
	m.Write(clientNonce[:])
	m.Write(serverNonce[:])
	m.Write(exporter)
	var out [proofLen]byte
	m.Sum(out[:0])
	return out
}

// exporterValue is this TLS connection's exporter output for the auth label.
func exporterValue(cs tls.ConnectionState) ([]byte, error) {
	v, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	if err != nil {
		return nil, fmt.Errorf("tunnelproto: TLS exporter: %w", err)
	}
	return v, nil
}

// validAgentID: 1 to MaxAgentIDLen bytes of printable ASCII without spaces.
func validAgentID(id string) bool {
	if len(id) == 0 || len(id) > MaxAgentIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// nonceCache remembers client nonces for ttl so a HELLO cannot reuse one.
// The real protection against replay is the exporter binding; the cache adds
// a cheap, early refusal and an audit reason. It is bounded: when full it
// drops expired entries and then, if still full, arbitrary ones.
type nonceCache struct {
	ttl time.Duration
	max int

	mu   sync.Mutex // guards seen
	seen map[[nonceLen]byte]time.Time
}

func newNonceCache(ttl time.Duration, max int) *nonceCache {
	return &nonceCache{ttl: ttl, max: max, seen: make(map[[nonceLen]byte]time.Time)}
}

// use records n and reports whether it was fresh.
func (c *nonceCache) use(n [nonceLen]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.seen[n]; ok && now.Sub(t) < c.ttl {
		return false
	}
	if len(c.seen) >= c.max {
		for k, t := range c.seen {
			if now.Sub(t) >= c.ttl {
				delete(c.seen, k)
			}
		}
		for k := range c.seen {
			if len(c.seen) < c.max {
				break
			}
			delete(c.seen, k)
		}
	}
	c.seen[n] = now
	return true
}

// limiter is a set of token buckets keyed by source address,
// spent by authentication failures. A key with an empty bucket is refused
// before any secret is looked up.
type limiter struct {
	burst float64
	every time.Duration // one token comes back per every
	max   int           // buckets kept; full buckets are dropped first

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(burst int, every time.Duration, max int) *limiter {
	return &limiter{burst: float64(burst), every: every, max: max, buckets: make(map[string]*bucket)}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+float64(d)/float64(l.every))
		b.last = now
	}
}

// allow reports whether key has a token left. It spends nothing.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return true
	}
	l.refill(b, now)
	return b.tokens >= 1
}

// fail spends one token of key.
func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// prune drops full buckets (equivalent to no bucket), then arbitrary ones.
// Called with mu held.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max {
			return
		}
		delete(l.buckets, k)
	}
}
