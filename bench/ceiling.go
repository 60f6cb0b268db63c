package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Extra figures of e2e with an ordered destination: the sink's sequential
// rate (sequentialPosts) from the harness's own process and from a child
// process, as the server posts, and the destination's deliveries per
// second over each.
const (
	extraSequentialCeiling     = "sequential_post_ceiling"
	extraRatioToSequential     = "ratio_to_sequential"
	extraSequentialCeiling2Pro = "sequential_post_ceiling_2proc"
	extraRatioToSequential2Pro = "ratio_to_sequential_2proc"
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

// sequentialPostsCommand is the hidden `bench` subcommand that runs
// sequentialPosts in a child process and prints its rate.
const sequentialPostsCommand = "sequential-posts"

func sequentialPostsCmd() *cli.Command {
	return &cli.Command{
		Name:   sequentialPostsCommand,
		Usage:  "e2e's two-process ceiling for an ordered destination: sequential POSTs to --url for --duration; prints the rate",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Required: true},
			&cli.IntFlag{Name: "body-size", Value: 512},
			&cli.DurationFlag{Name: "duration", Value: 5 * time.Second},
		},
		Action: func(c *cli.Context) error {
			return runSequentialPosts(c.Context, c.App.Writer, c.String("url"), c.Int("body-size"), c.Duration("duration"))
		},
	}
}

func runSequentialPosts(ctx context.Context, stdout io.Writer, url string, bodySize int, d time.Duration) error {
	if _, err := CheckLoopbackURL(url); err != nil {
		return fmt.Errorf("bench %s: %w", sequentialPostsCommand, err)
	}
	rate, err := sequentialPosts(ctx, url, bodySize, d)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, strconv.FormatFloat(rate, 'f', 1, 64))
	return err
}

// sequentialPostsChild runs sequentialPosts in a child process (bin bench
// sequential-posts): the server's line posts to the sink from another
// process, and crossing processes costs a context switch each way.
func sequentialPostsChild(ctx context.Context, bin, url string, bodySize int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", sequentialPostsCommand, "--url", url,
		"--body-size", strconv.Itoa(bodySize), "--duration", d.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("bench: %s bench %s: %w: %s", bin, sequentialPostsCommand, err, strings.TrimSpace(stderr.String()))
	}
	rate, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || rate <= 0 {
		return 0, fmt.Errorf("bench: %s bench %s printed %q", bin, sequentialPostsCommand, out)
	}
	return rate, nil
}
