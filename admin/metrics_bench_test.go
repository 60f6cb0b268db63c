package admin

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// BenchmarkMetricsScrape: one GET /metrics over 10,000 (paused)
// destinations, with 10,000 and with 1,000,000 deliveries pending.
// "scrape" is the scrape as it is: it reads each destination's counters, so
// its cost follows the number of destinations and not the backlog (the two
// backlogs should cost the same). "scan" is what counting the queues and
// dead-letter indexes key by key (QueueDepth and CountDead per destination,
// as scrapes did before) costs on the same store.
//
//	go test -run '^$' -bench MetricsScrape -benchtime 10x ./admin/
func BenchmarkMetricsScrape(b *testing.B) {
	for _, perDest := range []int{1, 100} {
		b.Run(fmt.Sprintf("pending=%d", 10_000*perDest), func(b *testing.B) { benchScrape(b, 10_000, perDest) })
	}
}

func benchScrape(b *testing.B, dests, perDest int) {
	dir := b.TempDir()
	db, err := wal.Open(dir, wal.Config{Partitions: 64, SecretKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	slug := func(i int) string { return fmt.Sprintf("dest-%05d", i) }
	// The store is built through wal directly: config objects and queue
	// entries as a destination actor writes them (no events: nothing is
	// delivered, every destination is paused).
	batch := db.NewBatch()
	for i := 0; i < dests; i++ {
		d := model.Destination{Slug: slug(i), URL: "http://127.0.0.1:9/", Paused: true}
		if err := batch.PutDestination(d); err != nil {
			b.Fatal(err)
		}
		for q := 1; q <= perDest; q++ {
			batch.PutQueue(d.Slug, uint64(q), 0, uint64(i*perDest+q))
		}
		if batch.Count() >= 100_000 {
			if err := db.CommitWait(batch); err != nil {
				b.Fatal(err)
			}
			batch = db.NewBatch()
		}
	}
	if err := db.CommitWait(batch); err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	node, err := actors.Start(actors.Config{DB: db, Deliverer: delivery.NewClient(delivery.Options{}), QueueWindow: 1, DrainTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	// Recovery wakes every destination; let them all finish starting so
	// the scrape is measured alone.
	for i := 0; i < dests; i++ {
		if _, err := node.DestinationStats(context.Background(), slug(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("node start with %d pending over %d destinations, actors included: %v", dests*perDest, dests, time.Since(started).Round(time.Millisecond))
	adm, err := New(Config{Node: node, MetricsPublic: true, MetricsCacheFor: time.Nanosecond})
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()

	scrape := func(b *testing.B) {
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("/metrics: %d", rec.Code)
		}
		if want := fmt.Sprintf(`webhookops_queue_depth{destination="%s"} %d`, slug(dests-1), perDest); !strings.Contains(rec.Body.String(), want) {
			b.Fatalf("/metrics lacks %s", want)
		}
	}
	b.Run("scrape", func(b *testing.B) {
		for b.Loop() {
			scrape(b)
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			total := 0
			for i := 0; i < dests; i++ {
				n, err := db.QueueDepth(slug(i))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.CountDead(slug(i)); err != nil {
					b.Fatal(err)
				}
				total += n
			}
			if total != dests*perDest {
				b.Fatalf("scanned %d entries, want %d", total, dests*perDest)
			}
		}
	})
}
