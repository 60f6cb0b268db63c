package destsm

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// ceiling computes min(maxDelay, base*2^(attempt-1)) without overflow.
func ceiling(attempt int, base, maxDelay time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	v := new(big.Int).Lsh(big.NewInt(int64(base)), uint(min(attempt-1, 200)))
	if v.Cmp(big.NewInt(int64(maxDelay))) > 0 {
		return maxDelay
	}
	return time.Duration(v.Int64())
}

func TestBackoffBounds(t *testing.T) {
	rnds := map[string]func(int64) int64{
		"top":      func(n int64) int64 { return n - 1 },
		"zero":     func(int64) int64 { return 0 },
		"random":   rand.Int64N,
		"too big":  func(n int64) int64 { return math.MaxInt64 },
		"negative": func(int64) int64 { return -5 },
	}
	pairs := [][2]time.Duration{
		{5 * time.Second, time.Hour},
		{model.DefaultBackoffBase, model.DefaultBackoffMax},
		{time.Nanosecond, math.MaxInt64},
		{time.Hour, time.Second}, // base above max: max wins
		{math.MaxInt64, math.MaxInt64},
		{3, 1000},
	}
	attempts := []int{math.MinInt, -1, 0, math.MaxInt}
	for a := 1; a <= 70; a++ {
		attempts = append(attempts, a)
	}
	for name, rnd := range rnds {
		for _, p := range pairs {
			for _, a := range attempts {
				ceil := ceiling(a, p[0], p[1])
				got := Backoff(a, p[0], p[1], rnd)
				if got < 0 || got > ceil {
					t.Fatalf("rnd %s: Backoff(%d, %v, %v) = %v, want within [0, %v]", name, a, p[0], p[1], got, ceil)
				}
				// rnd(n) is below n, so MaxInt64 itself cannot be drawn.
				if name == "top" && got != ceil && !(ceil == math.MaxInt64 && got == ceil-1) {
					t.Fatalf("Backoff(%d, %v, %v) at the top of the range = %v, want %v (inclusive)", a, p[0], p[1], got, ceil)
				}
			}
		}
	}
}

func TestBackoffGrowsThenCaps(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second}
	for i, w := range want {
		if got := Backoff(i+1, 5*time.Second, time.Hour, top); got != w {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w)
		}
	}
	if got := Backoff(30, 5*time.Second, time.Hour, top); got != time.Hour {
		t.Errorf("attempt 30: %v, want the 1h cap", got)
	}
	// Zero parameters mean the wal defaults.
	if got := Backoff(1, 0, 0, top); got != model.DefaultBackoffBase {
		t.Errorf("defaults: %v, want %v", got, model.DefaultBackoffBase)
	}
	if got := Backoff(70, 0, 0, top); got != model.DefaultBackoffMax {
		t.Errorf("defaults: %v, want %v", got, model.DefaultBackoffMax)
	}
}

func TestNextDelay(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	d := model.Destination{BackoffBase: model.Duration(2 * time.Second), BackoffMax: model.Duration(time.Minute)}
	for _, tc := range []struct {
		name    string
		attempt int
		res     Result
		want    time.Duration
	}{
		{"429 retry-after honoured", 1, Result{StatusCode: 429, RetryAfter: 30 * time.Second}, 30 * time.Second},
		{"503 retry-after honoured", 5, Result{StatusCode: 503, RetryAfter: 3 * time.Second}, 3 * time.Second},
		{"retry-after capped by backoff_max", 1, Result{StatusCode: 429, RetryAfter: 2 * time.Hour}, time.Minute},
		{"429 without retry-after backs off", 3, Result{StatusCode: 429}, 8 * time.Second},
		{"500 ignores retry-after", 1, Result{StatusCode: 500, RetryAfter: 30 * time.Second}, 2 * time.Second},
		{"connection error backs off", 2, Result{Err: "connection refused"}, 4 * time.Second},
		{"backoff capped", 40, Result{StatusCode: 500}, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextDelay(tc.attempt, d, tc.res, top); got != tc.want {
				t.Fatalf("NextDelay = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		got := NextDelay(1, model.Destination{}, Result{StatusCode: 429, RetryAfter: 48 * time.Hour}, top)
		if got != model.DefaultBackoffMax {
			t.Fatalf("NextDelay = %v, want the default cap %v", got, model.DefaultBackoffMax)
		}
		bad := model.Destination{BackoffMax: model.Duration(-time.Second)}
		if got := NextDelay(1, bad, Result{StatusCode: 429, RetryAfter: time.Second}, top); got != time.Second {
			t.Fatalf("negative backoff_max: NextDelay = %v, want 1s", got)
		}
	})
}
