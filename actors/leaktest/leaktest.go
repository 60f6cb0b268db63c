// Package leaktest is for tests only: TestMain of a package that runs the
// engine checks with it that the test binary leaves no goroutine behind,
// ignoring the few that the engine's dependencies start once per process
// and never stop. One list, so a new one is added in one place.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// Options are goleak's options for the engine's process-wide goroutines,
// then extra.
func Options(extra ...goleak.Option) []goleak.Option {
	return append([]goleak.Option{
		// protoactor's process registry and dead-letter throttling keep
		// package-level goroutines.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreAnyFunction("github.com/lithammer/shortuuid/v4.init"),
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble/v2/internal/ascii.init"),
	}, extra...)
}

// VerifyTestMain runs the tests and fails the binary if goroutines other
// than those of Options(extra...) are left when they end.
func VerifyTestMain(m *testing.M, extra ...goleak.Option) {
	goleak.VerifyTestMain(m, Options(extra...)...)
}
