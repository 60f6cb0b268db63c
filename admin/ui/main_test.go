package ui

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/webhookops/webhookops/actors/leaktest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	if code == 0 {
		// After the browser is gone: chromedp's goroutines end with it.
		if err := goleak.Find(leaktest.Options()...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}
