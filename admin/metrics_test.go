package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken})
	sk := newSink(t)
	secret := e.setup(sk, nil)
	id := e.ingest("shop", secret, "m1", `{}`)
	eventually(t, 10*time.Second, "delivery", func() bool { return e.event(id).Status == EventDelivered })
	e.must(http.StatusOK, "POST", "/api/v1/destinations/app/pause", nil, nil)
	e.ingest("shop", secret, "m2", `{}`)

	if code, _ := e.callAs("", "GET", "/metrics", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d", code)
	}
	if code, _ := e.callAs("whops_not-a-token-of-this-node-0123456789", "GET", "/metrics", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong token: %d", code)
	}
	var text string
	eventually(t, 5*time.Second, "queue depth 1", func() bool {
		_, raw := e.call("GET", "/metrics", nil, nil)
		text = string(raw)
		return strings.Contains(text, `webhookops_queue_depth{destination="app"} 1`)
	})
	for _, want := range []string{
		`webhookops_events_received_total{outcome="accepted",source="shop"} 2`,
		`webhookops_delivery_attempts_total{destination="app",outcome="delivered"} 1`,
		`webhookops_delivery_attempt_seconds_count 1`,
		`webhookops_ingest_to_delivered_seconds_count 1`,
		`webhookops_dead_letters{destination="app"} 0`,
		`webhookops_destination_paused{destination="app"} 1`,
		`webhookops_agents_online 0`,
		`webhookops_replays_active 0`,
		`webhookops_refusals_total{action="auth.rejected"} `, // refused tokens are counted, not only bad signatures
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestMetricsPublic(t *testing.T) {
	e := newEnv(t, envOpts{bootstrap: testToken, metricsPublic: true})
	if code, _ := e.callAs("", "GET", "/metrics", nil, nil); code != http.StatusOK {
		t.Fatalf("/metrics with --metrics-public and no token: %d", code)
	}
	if code, _ := e.callAs("", "GET", "/api/v1/sources", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("the API without a token: %d", code)
	}
}
