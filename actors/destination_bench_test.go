package actors

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal/model"
)

// BenchmarkOrderedDelivery: one ordered destination delivering to a
// loopback sink that answers at once, the events already ingested; what is
// measured is the destination's own loop (attempt, outcome write, next
// attempt). deliveries/s is the figure.
//
//	go test -run '^$' -bench OrderedDelivery -benchtime 5000x ./actors/
func BenchmarkOrderedDelivery(b *testing.B) {
	for _, pipeline := range []int{1, 0} {
		name := fmt.Sprint("pipeline=", pipeline)
		if pipeline == 0 {
			name = "pipeline=default"
		}
		b.Run(name, func(b *testing.B) {
			var got atomic.Int64
			sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
			defer sink.Close()
			tn := startNodeWith(b, b.TempDir(), nil, baseChange(sink.URL, model.Destination{Ordering: model.OrderingOrdered, Paused: true}), func(c *Config) {
				c.OrderedPipeline = pipeline
			})
			// Ingest the backlog while the destination is paused, 64 at a
			// time (each waits for its fsync).
			var wg sync.WaitGroup
			keys := make(chan int)
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range keys {
						tn.ingest(b, "src", fmt.Sprint("k", i), "body")
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				keys <- i
			}
			close(keys)
			wg.Wait()
			b.ResetTimer()
			start := time.Now()
			if err := tn.Apply(baseChange(sink.URL, model.Destination{Ordering: model.OrderingOrdered})); err != nil {
				b.Fatal(err)
			}
			for got.Load() < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}
