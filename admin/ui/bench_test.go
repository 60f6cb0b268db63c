package ui

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/internal/testnode"
	"github.com/webhookops/webhookops/wal"
)

var benchEvents = flag.Int("bench-events", 1_000_000, "events stored for BenchmarkPages")

// fillEvents stores n events straight into the store, as the shards would
// have: one destination each, delivered with one attempt, every hundredth
// dead-lettered after three, every fiftieth from a second source. It
// answers the ids of the newest event, one in the middle and one 10,000
// from the top.
func fillEvents(tb testing.TB, db *wal.DB, n int) (newest, middle, deep string) {
	start := time.Now().Add(-time.Duration(n) * time.Second)
	const batch = 5000
	for i := 0; i < n; i += batch {
		b := db.NewBatch()
		for j := i; j < min(i+batch, n); j++ {
			src := "shop"
			if j%50 == 0 {
				src = "github"
			}
			key := fmt.Sprintf("ord_%08d", j)
			at := start.Add(time.Duration(j) * time.Second)
			e := &wal.Event{Partition: db.EventPartition(src, key), Seq: db.NextSeq(), Source: src, IdemKey: key, EventType: "order.created", ReceivedAt: at,
				Headers: [][2]string{{"Content-Type", "application/json"}, {"User-Agent", "Shopify-Captain-Hook"}, {"X-Shopify-Topic", "orders/create"},
					{"X-Shopify-Webhook-Id", key}, {"X-Shopify-Hmac-Sha256", "yQ3iX3bOKnjQ5tEGyDb3QWmHBVxU4VqzjNk1GHnk8fA="}},
				Body:         fmt.Appendf(nil, `{"id":%d,"email":"customer%d@example.com","total_price":"%d.95","currency":"EUR","line_items":[{"sku":"SKU-%d","quantity":2}]}`, j, j, j%500, j%977),
				Destinations: []string{"app"}}
			b.PutEvent(e)
			d := &wal.Delivery{Destination: "app", EventID: e.ID(), Status: wal.StatusDelivered, UpdatedAt: at.Add(40 * time.Millisecond),
				Attempts: []wal.Attempt{{N: 1, At: at.Add(5 * time.Millisecond), DurationMS: 31.5, StatusCode: 200, Response: `{"ok":true}`}}}
			if j%100 == 7 {
				d.Status = wal.StatusDead
				d.Attempts = []wal.Attempt{{N: 1, At: at, DurationMS: 12, StatusCode: 503, Response: "upstream unavailable"},
					{N: 2, At: at.Add(time.Second), DurationMS: 11, StatusCode: 503, Response: "upstream unavailable"},
					{N: 3, At: at.Add(3 * time.Second), DurationMS: 10, StatusCode: 503, Response: "upstream unavailable"}}
			}
			b.PutDelivery(e.Seq, d)
			switch j {
			case n - 1:
				newest = e.ID()
			case n / 2:
				middle = e.ID()
			case n - 10_000:
				deep = e.ID()
			}
		}
		if err := db.CommitWait(b); err != nil {
			tb.Fatal(err)
		}
	}
	return newest, middle, deep
}

// BenchmarkPages times the event list and event pages, through HTTP with
// a session, over a store of -bench-events events (a million by default),
// beside the JSON API's list of the same page:
//
//	go test ./admin/ui -run '^$' -bench Pages -benchtime 50x
func BenchmarkPages(b *testing.B) {
	var newest, middle, deep string
	tn := testnode.Start(b, testnode.Options{Token: adminToken, Seed: func(db *wal.DB) {
		t0 := time.Now()
		newest, middle, deep = fillEvents(b, db, *benchEvents)
		b.Logf("stored %d events in %v", *benchEvents, time.Since(t0).Round(time.Second))
	}})
	defer tn.Close()
	u, err := New(Config{Admin: tn.Admin})
	if err != nil {
		b.Fatal(err)
	}
	tn.Admin.MountUI(u)
	srv := httptest.NewServer(tn.Admin)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(srv.URL+"/ui/login", url.Values{"token": {adminToken}})
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("login: %v %v", err, resp)
	}
	resp.Body.Close()
	_, deepSeq, _ := wal.ParseEventID(deep)
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/destinations", strings.NewReader(`{"slug":"app","url":"https://app.example/hooks"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("destination: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	get := func(b *testing.B, path, want string) {
		b.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken) // the JSON API's; the UI uses the cookie
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			i := strings.Index(string(body), "event-count")
			b.Fatalf("GET %s: %d, %d bytes, want %q in it: %.200s", path, resp.StatusCode, len(body), want, string(body)[max(i, 0):])
		}
	}
	for _, bc := range []struct{ name, path, want string }{
		{"ui-list-first", "/ui/events", "10,000&#43;"},
		{"api-list-first", "/api/v1/events", newest},
		{"ui-list-page-200", fmt.Sprintf("/ui/events?cursor=%d", deepSeq), "Older"},
		{"ui-list-source-2pct", "/ui/events?source=github", "&#43;</strong>"},
		{"ui-list-dead-1pct", "/ui/events?status=dead_lettered", "dead_lettered"},
		{"ui-dead-letters", "/ui/destinations/app/dead-letters", "Dead letters of app"},
		{"ui-event", "/ui/events/" + middle, middle},
		{"api-event", "/api/v1/events/" + middle, middle},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				get(b, bc.path, bc.want)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}
