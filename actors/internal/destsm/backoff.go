package destsm

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// Backoff returns the delay before the attempt after attempt number attempt
// (1-based) failed: exponential with full jitter, uniform in
// [0, min(maxDelay, base*2^(attempt-1))].
//
// rnd(n) must return a value in [0, n), like math/rand/v2.Int64N; nil means
// math/rand/v2.Int64N, and a value out of range is clamped. A non-positive
// base or maxDelay means the model default; attempt below 1 counts as 1. The
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
	if res.RetryAfter > 0 && (res.StatusCode == statusTooManyRequests || res.StatusCode == statusServiceUnavailable) {
		return min(res.RetryAfter, maxDelay)
	}
	return Backoff(attempt, d.BackoffBase.D(), maxDelay, rnd)
}

// The statuses whose Retry-After is honoured (net/http's names, without
// importing it: this package does no I/O).
const (
	statusTooManyRequests    = 429
	statusServiceUnavailable = 503
)
