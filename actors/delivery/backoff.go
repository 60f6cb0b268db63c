package delivery

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Backoff returns the delay before the attempt after attempt number attempt
// (1-based) failed: exponential with full jitter, uniform in
// [0, min(maxDelay, base*2^(attempt-1))].
//
// rnd(n) must return a value in [0, n), like math/rand/v2.Int64N; nil means
// math/rand/v2.Int64N, and a value out of range is clamped. A non-positive
// base or maxDelay means the wal default; attempt below 1 counts as 1. The
// arithmetic never overflows, whatever the attempt number.
func Backoff(attempt int, base, maxDelay time.Duration, rnd func(int64) int64) time.Duration {
	if base <= 0 {
		base = model.DefaultBackoffBase
	}
	if maxDelay <= 0 {
		maxDelay = model.DefaultBackoffMax
	}
	if attempt < 1 {
		attempt = 1
	}
	ceil := maxDelay
	// base<<shift <= maxDelay exactly when base <= maxDelay>>shift, and then
	// the shift cannot overflow.
	if shift := attempt - 1; shift < 63 && base <= maxDelay>>shift {
		ceil = base << shift
	}
	if rnd == nil {
		rnd = rand.Int64N
	}
	n := int64(ceil)
	if n < math.MaxInt64 {
		n++ // inclusive upper bound
	}
	v := rnd(n)
	if v < 0 {
		v = 0
	} else if v > int64(ceil) {
		v = int64(ceil)
	}
	return time.Duration(v)
}

// NextDelay returns how long to wait before retrying after attempt number
// attempt failed with res. A Retry-After from a 429 or 503 is honoured
// (capped by the destination's backoff_max); otherwise it is Backoff with the
// destination's backoff_base and backoff_max.
func NextDelay(attempt int, d model.Destination, res Result, rnd func(int64) int64) time.Duration {
	d = d.WithDefaults()
	maxDelay := d.BackoffMax.D()
	if maxDelay <= 0 {
		maxDelay = model.DefaultBackoffMax
	}
	if res.RetryAfter > 0 && hasRetryAfter(res.StatusCode) {
		return min(res.RetryAfter, maxDelay)
	}
	return Backoff(attempt, d.BackoffBase.D(), maxDelay, rnd)
}

// hasRetryAfter reports whether a status's Retry-After is honoured.
func hasRetryAfter(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// maxRetryAfterSeconds keeps seconds*time.Second inside a time.Duration.
const maxRetryAfterSeconds = math.MaxInt64 / int64(time.Second)

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP-date
// (relative to now). Anything unparseable, negative or in the past is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return time.Duration(maxRetryAfterSeconds) * time.Second
			}
			return 0
		}
		return time.Duration(min(n, maxRetryAfterSeconds)) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if d := t.Sub(now); d > 0 {
		return d
	}
	return 0
}
