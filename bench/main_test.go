package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a fake `webhookops serve` for the scenarios
	// that start a child, so the harness is tested end to end whether or not
	// the real server exists yet.
	if os.Getenv(fakeServeEnv) != "" {
		os.Exit(fakeServeMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}
