package ui

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	if code == 0 {
		if err := goleak.Find(
			// protoactor's process registry and dead-letter throttling keep
			// package-level goroutines.
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
			goleak.IgnoreAnyFunction("github.com/lithammer/shortuuid/v4.init"),
			goleak.IgnoreTopFunction("github.com/cockroachdb/pebble/v2/internal/ascii.init"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}
