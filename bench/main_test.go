package bench

import (
	"fmt"
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
	// Every child the tests start may be the test binary acting as serve.
	os.Setenv(fakeServeEnv, "1")
	dir, err := os.MkdirTemp("", "webhookops-bench-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// binDir holds binaries the tests build; removed after the run.
var binDir string
