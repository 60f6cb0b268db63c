package bench

import (
	"context"
	"testing"
	"time"
)

// BenchmarkGeneratorNoop is the generator's own cost per request against the
// in-process no-op handler (closed loop, 16 workers): what the harness takes
// away from the server it measures.
func BenchmarkGeneratorNoop(b *testing.B) {
	srv, err := startHTTPServer("", noopIngest())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client := newClient(16, 10*time.Second)
	defer client.CloseIdleConnections()
	sg := newSigner(client, srv.url(), "bench", "secret", 512)
	b.ReportAllocs()
	b.ResetTimer()
	lr := load{closed: true, workers: 16, duration: time.Hour, requests: int64(b.N), newWorker: sg.newWorker}.run(context.Background())
	b.StopTimer()
	if lr.rec.errs.Load() > 0 {
		b.Fatal(lr.rec.firstError())
	}
	b.ReportMetric(lr.throughput(), "req/s")
}
