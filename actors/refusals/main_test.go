package refusals

import (
	"testing"

	"github.com/webhookops/webhookops/actors/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
