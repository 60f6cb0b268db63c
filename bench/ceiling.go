package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Extra figures of e2e with an ordered destination: the sink's sequential
// rate (sequentialPosts) and the destination's deliveries per second over it.
const (
	extraSequentialCeiling = "sequential_post_ceiling"
	extraRatioToSequential = "ratio_to_sequential"
)

// sequentialPosts is the ceiling of one ordered destination: one loop that
// POSTs a body of bodySize to url, one request at a time over one
// keep-alive connection, for d (or until ctx is done), and reports 2xx
// answers per second. An ordered destination does the same thing with a
// queue, a store and the ingest path around it, so its deliveries per
// second over this is the share of the sink's sequential rate it keeps.
// The headers are shaped like a delivery's, with an id the sink does not
// count as one.
func sequentialPosts(ctx context.Context, url string, bodySize int, d time.Duration) (float64, error) {
	client := newClient(1, 10*time.Second)
	defer client.CloseIdleConnections()
	body := appendBody(nil, []byte("ceiling"), bodySize)
	scrap := make([]byte, 512)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var n int64
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return 0, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
		id := "ceiling-" + strconv.FormatInt(n, 10)
		req.Header = http.Header{
			"Content-Type":         {"application/json"},
			"User-Agent":           {"WebhookOps"},
			headerEventID:          {id},
			headerWebhookID:        {id},
			"Webhook-Timestamp":    {strconv.FormatInt(time.Now().Unix(), 10)},
			"X-Webhookops-Attempt": {"1"},
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return 0, fmt.Errorf("bench: sequential ceiling: %w", err)
		}
		if err := readStatus(resp, http.StatusNoContent, scrap); err != nil {
			return 0, fmt.Errorf("bench: sequential ceiling: %w", err)
		}
		n++
	}
	elapsed := time.Since(start)
	if n == 0 || elapsed <= 0 {
		return 0, fmt.Errorf("bench: sequential ceiling: no request answered in %v", d)
	}
	return float64(n) / elapsed.Seconds(), nil
}
