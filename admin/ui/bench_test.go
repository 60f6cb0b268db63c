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

// benchStore is what fillEvents stored, for the benchmark's queries.
type benchStore struct {
	newest, middle, deep string    // ids: the newest event, one in the middle, one 10,000 from the top
	middleKey, middleSrc string    // the middle event's idempotency key and source
	start                time.Time // the oldest event's receive time; one event a second after it
}

// fillEvents stores n events straight into the store, as the shards and
// destination actors would have, one a second. Every event goes to
// destination app; every 25th also to crm; every 1,000th (at 500) to none.
// Every 50th is from source github, every 10,000th (at 77) from stripe, the
// rest from shop. Types: orders/create, every 200th orders/cancelled, every
// 10,000th (at 11) refunds/create. At app every 100th (at 7) is
// dead-lettered after three attempts, every 5,000th (at 13) is still
// retrying (a failed attempt, a next attempt due), and the newest 300 are
// queued with no attempt yet; the rest are delivered, as everything at crm
// is.
func fillEvents(tb testing.TB, db *wal.DB, n int) benchStore {
	bs := benchStore{start: time.Now().Add(-time.Duration(n) * time.Second).Truncate(time.Second)}
	const batch = 5000
	var qseq uint64
	for i := 0; i < n; i += batch {
		b := db.NewBatch()
		for j := i; j < min(i+batch, n); j++ {
			src := "shop"
			switch {
			case j%10_000 == 77:
				src = "stripe"
			case j%50 == 0:
				src = "github"
			}
			typ := "orders/create"
			switch {
			case j%10_000 == 11:
				typ = "refunds/create"
			case j%200 == 3:
				typ = "orders/cancelled"
			}
			dests := []string{"app"}
			switch {
			case j%1000 == 500:
				dests = nil
			case j%25 == 1:
				dests = append(dests, "crm")
			}
			key := fmt.Sprintf("ord_%08d", j)
			at := bs.start.Add(time.Duration(j) * time.Second)
			e := &wal.Event{Partition: db.EventPartition(src, key), Seq: db.NextSeq(), Source: src, IdemKey: key, EventType: typ, ReceivedAt: at,
				Headers: [][2]string{{"Content-Type", "application/json"}, {"User-Agent", "Shopify-Captain-Hook"}, {"X-Shopify-Topic", typ},
					{"X-Shopify-Webhook-Id", key}, {"X-Shopify-Hmac-Sha256", "yQ3iX3bOKnjQ5tEGyDb3QWmHBVxU4VqzjNk1GHnk8fA="}},
				Body:         fmt.Appendf(nil, `{"id":%d,"email":"customer%d@example.com","total_price":"%d.95","currency":"EUR","line_items":[{"sku":"SKU-%d","quantity":2}]}`, j, j, j%500, j%977),
				Destinations: dests}
			b.PutEvent(e)
			b.PutDedupe(e.Partition, src, key, e.Seq, at)
			for _, dest := range dests {
				ok := wal.Attempt{N: 1, At: at.Add(5 * time.Millisecond), DurationMS: 31.5, StatusCode: 200, Response: `{"ok":true}`}
				d := &wal.Delivery{Destination: dest, EventID: e.ID(), Status: wal.StatusDelivered, UpdatedAt: at.Add(40 * time.Millisecond), Attempts: []wal.Attempt{ok}}
				if dest == "app" {
					switch {
					case j >= n-300:
						qseq++
						b.PutQueue(dest, qseq, e.Partition, e.Seq)
						continue // no record until the first attempt
					case j%5000 == 13:
						qseq++
						b.PutQueue(dest, qseq, e.Partition, e.Seq)
						d.Status, d.QSeq, d.NextAt = wal.StatusPending, qseq, at.Add(time.Hour)
						d.Attempts = []wal.Attempt{{N: 1, At: at, DurationMS: 12, StatusCode: 503, Response: "upstream unavailable"}}
					case j%100 == 7:
						d.Status = wal.StatusDead
						d.Attempts = []wal.Attempt{{N: 1, At: at, DurationMS: 12, StatusCode: 503, Response: "upstream unavailable"},
							{N: 2, At: at.Add(time.Second), DurationMS: 11, StatusCode: 503, Response: "upstream unavailable"},
							{N: 3, At: at.Add(3 * time.Second), DurationMS: 10, StatusCode: 503, Response: "upstream unavailable"}}
					}
				}
				b.PutDelivery(e.Seq, d)
			}
			switch j {
			case n - 1:
				bs.newest = e.ID()
			case n / 2:
				bs.middle, bs.middleKey, bs.middleSrc = e.ID(), key, src
			case n - 10_000:
				bs.deep = e.ID()
			}
		}
		if err := db.CommitWait(b); err != nil {
			tb.Fatal(err)
		}
	}
	return bs
}

// BenchmarkPages times the event list with every filter the UI offers
// (the first page, with its count), the dead-letter list and the event
// page, through HTTP with a session, over a store of -bench-events events
// (a million by default), beside the JSON API's list and event:
//
//	go test ./admin/ui -run '^$' -bench Pages -benchtime 40x
func BenchmarkPages(b *testing.B) {
	var bs benchStore
	tn := testnode.Start(b, testnode.Options{Token: adminToken, Seed: func(db *wal.DB) {
		t0 := time.Now()
		bs = fillEvents(b, db, *benchEvents)
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
	_, deepSeq, _ := wal.ParseEventID(bs.deep)
	// Paused: the queued events stay pending while the benchmark reads.
	for _, dest := range []string{"app", "crm"} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/destinations", strings.NewReader(`{"slug":"`+dest+`","url":"https://`+dest+`.example/hooks","paused":true}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatalf("destination: %v %v", err, resp)
		} else {
			resp.Body.Close()
		}
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
	ts := func(d time.Duration) string { return url.QueryEscape(bs.start.Add(d).Format(time.RFC3339)) }
	mid := time.Duration(*benchEvents/2) * time.Second
	for _, bc := range []struct{ name, path, want string }{
		{"ui-list-first", "/ui/events", "10,000&#43;"},
		{"api-list-first", "/api/v1/events", bs.newest},
		{"ui-list-page-200", fmt.Sprintf("/ui/events?cursor=%d", deepSeq), "Older"},
		{"ui-source-2pct", "/ui/events?source=github", "&#43;</strong>"},
		{"ui-source-0.01pct", "/ui/events?source=stripe", "stripe"},
		{"ui-type-0.5pct", "/ui/events?event_type=orders/cancelled", "orders/cancelled"},
		{"ui-type-0.01pct", "/ui/events?event_type=refunds/create", "refunds/create"},
		{"ui-type-pattern", "/ui/events?event_type=orders/*", "orders/create"},
		{"ui-status-dead-1pct", "/ui/events?status=dead_lettered", "dead_lettered"},
		{"ui-status-pending", "/ui/events?status=pending", "pending"},
		{"ui-status-delivered", "/ui/events?status=delivered", "delivered"},
		{"ui-status-no-dest-0.1pct", "/ui/events?status=no_destinations", "no_destinations"},
		{"api-status-dead-1pct", "/api/v1/events?status=dead_lettered", "dead_lettered"},
		{"api-status-pending", "/api/v1/events?status=pending", "pending"},
		{"ui-dest-4pct", "/ui/events?destination=crm", "crm"},
		{"ui-dest-status-dead", "/ui/events?destination=app&status=dead_lettered", "dead_lettered"},
		{"ui-dest-status-pending", "/ui/events?destination=app&status=pending", "pending"},
		{"ui-source-status-dead", "/ui/events?source=github&status=dead_lettered", "dead_lettered"},
		{"ui-until-middle", "/ui/events?until=" + ts(mid), "Older"},
		{"ui-since-until-hour", "/ui/events?since=" + ts(mid) + "&until=" + ts(mid+time.Hour), "Older"},
		{"ui-idem-key", "/ui/events?idempotency_key=" + bs.middleKey, bs.middle},
		{"ui-idem-key-source", "/ui/events?source=" + bs.middleSrc + "&idempotency_key=" + bs.middleKey, bs.middle},
		{"ui-dead-letters", "/ui/destinations/app/dead-letters", "Dead letters of app"},
		{"ui-event", "/ui/events/" + bs.middle, bs.middle},
		{"api-event", "/api/v1/events/" + bs.middle, bs.middle},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				get(b, bc.path, bc.want)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}
