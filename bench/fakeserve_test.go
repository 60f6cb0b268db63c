package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"
)

// fakeServeEnv turns the test binary into a fake `webhookops serve` that
// keeps the server contract the harness codes against: signed ingest with
// dedupe, a durable (fsynced) event log before the 202, delivery to the
// destination with the forwarded X-Webhook-Id and a webhook-id header
// (none while it is paused: events queue up), a restart that delivers what was pending, /readyz, SIGTERM.
const fakeServeEnv = "BENCH_TEST_FAKE_SERVE"

type fakeConfig struct {
	Sources []struct {
		Slug     string   `yaml:"slug"`
		Provider string   `yaml:"provider"`
		Secrets  []string `yaml:"secrets"`
		Routes   []struct {
			Destination string `yaml:"destination"`
		} `yaml:"routes"`
	} `yaml:"sources"`
	Destinations []struct {
		Slug                string `yaml:"slug"`
		URL                 string `yaml:"url"`
		Ordering            string `yaml:"ordering"`
		AllowPrivateNetwork bool   `yaml:"allow_private_network"`
		MaxInFlight         int    `yaml:"max_in_flight"`
		Timeout             string `yaml:"timeout"`
		MaxAttempts         int    `yaml:"max_attempts"`
		BackoffBase         string `yaml:"backoff_base"`
		Paused              bool   `yaml:"paused"`
	} `yaml:"destinations"`
}

func fakeServeMain(args []string) int {
	if len(args) == 2 && args[0] == "bench" && args[1] == quicSinkCommand {
		// tunnel-tcp's two-process QUIC baseline re-runs the harness's binary.
		if err := runQUICSink(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	if len(args) > 2 && args[0] == "bench" && args[1] == sequentialPostsCommand {
		// e2e's two-process ceiling for an ordered destination.
		fs := flag.NewFlagSet(sequentialPostsCommand, flag.ContinueOnError)
		url := fs.String("url", "", "")
		bodySize := fs.Int("body-size", 512, "")
		d := fs.Duration("duration", time.Second, "")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		if err := runSequentialPosts(context.Background(), os.Stdout, *url, *bodySize, *d); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "fake webhookops: only serve")
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "")
	ingestAddr := fs.String("ingest-addr", "", "")
	adminAddr := fs.String("admin-addr", "", "")
	config := fs.String("config", "", "")
	fs.String("log-level", "info", "")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "serve --data-dir DIR --ingest-addr ADDR --admin-addr ADDR --config FILE --log-level LEVEL")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	g, err := startFakeGateway(*dataDir, *config, *ingestAddr, *adminAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake webhookops:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	g.Close()
	return 0
}

type fakeEvent struct{ eventID, webhookID string }

type fakeGateway struct {
	secret  []byte
	source  string
	url     string
	timeout time.Duration
	backoff time.Duration
	tries   int

	ingest, admin *httpServer
	client        *http.Client

	mu        sync.Mutex // guards the fields below
	seen      map[string]string
	log       *os.File
	delivered *os.File
	queue     []fakeEvent
	next      int64
	closed    bool
	cond      *sync.Cond

	wg sync.WaitGroup
}

func startFakeGateway(dataDir, configPath, ingestAddr, adminAddr string) (*fakeGateway, error) {
	b, err := os.ReadFile(configPath)
	if err != nil {
		return nil, err
	}
	var cfg fakeConfig
	if err := yaml.UnmarshalWithOptions(b, &cfg, yaml.Strict()); err != nil {
		return nil, err
	}
	if len(cfg.Sources) != 1 || len(cfg.Sources[0].Routes) == 0 || len(cfg.Destinations) == 0 {
		return nil, fmt.Errorf("want one routed source and a destination")
	}
	src := cfg.Sources[0]
	var dest = cfg.Destinations[0]
	for _, d := range cfg.Destinations {
		if d.Slug == src.Routes[0].Destination {
			dest = d
		}
	}
	g := &fakeGateway{
		secret: []byte(src.Secrets[0]),
		source: src.Slug,
		url:    dest.URL,
		tries:  dest.MaxAttempts,
		seen:   make(map[string]string),
	}
	g.cond = sync.NewCond(&g.mu)
	if g.timeout, err = time.ParseDuration(dest.Timeout); err != nil {
		return nil, err
	}
	if g.backoff, err = time.ParseDuration(dest.BackoffBase); err != nil {
		return nil, err
	}
	g.client = &http.Client{Timeout: g.timeout, Transport: &http.Transport{MaxIdleConnsPerHost: dest.MaxInFlight}}

	// Recover: every logged event not in the delivered log is pending.
	done := make(map[string]bool)
	if f, err := os.Open(filepath.Join(dataDir, "delivered.log")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			done[sc.Text()] = true
		}
		f.Close()
	}
	if f, err := os.Open(filepath.Join(dataDir, "events.log")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ev, wh, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue // a torn last line was never acknowledged
			}
			g.seen[wh] = ev
			if !done[ev] {
				g.queue = append(g.queue, fakeEvent{ev, wh})
			}
		}
		f.Close()
	}
	if g.log, err = os.OpenFile(filepath.Join(dataDir, "events.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	if g.delivered, err = os.OpenFile(filepath.Join(dataDir, "delivered.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	g.next = time.Now().UnixNano()
	if !dest.Paused {
		for range max(dest.MaxInFlight, 1) {
			g.wg.Go(g.deliverLoop)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /in/{source}", g.serveIngest)
	if g.ingest, err = startHTTPServer(ingestAddr, mux); err != nil {
		g.Close()
		return nil, err
	}
	amux := http.NewServeMux()
	amux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	if g.admin, err = startHTTPServer(adminAddr, amux); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *fakeGateway) serveIngest(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("source") != g.source {
		http.Error(w, "unknown source", http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	mac := hmac.New(sha256.New, g.secret)
	mac.Write(b)
	if !hmac.Equal([]byte(r.Header.Get(headerSignature)), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	wh := r.Header.Get(headerWebhookID)
	if wh == "" || strings.ContainsAny(wh, " \n") {
		http.Error(w, "bad X-Webhook-Id", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	if ev, dup := g.seen[wh]; dup {
		g.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `{"event_id":%q,"duplicate":true}`, ev)
		return
	}
	g.next++
	ev := "evt_" + strconv.FormatInt(g.next, 36)
	_, err = fmt.Fprintf(g.log, "%s %s\n", ev, wh)
	if err == nil {
		err = g.log.Sync()
	}
	if err != nil {
		g.mu.Unlock()
		http.Error(w, "storage failure", http.StatusServiceUnavailable)
		return
	}
	g.seen[wh] = ev
	g.queue = append(g.queue, fakeEvent{ev, wh})
	g.cond.Signal()
	g.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"event_id":%q,"duplicate":false}`, ev)
}

func (g *fakeGateway) deliverLoop() {
	for {
		g.mu.Lock()
		for len(g.queue) == 0 && !g.closed {
			g.cond.Wait()
		}
		if g.closed {
			g.mu.Unlock()
			return
		}
		ev := g.queue[0]
		g.queue = g.queue[1:]
		g.mu.Unlock()
		for attempt := 1; attempt <= g.tries; attempt++ {
			if g.deliver(ev, attempt) {
				g.mu.Lock()
				fmt.Fprintln(g.delivered, ev.eventID)
				g.mu.Unlock()
				break
			}
			time.Sleep(g.backoff << (attempt - 1))
		}
	}
}

func (g *fakeGateway) deliver(ev fakeEvent, attempt int) bool {
	req, _ := http.NewRequest(http.MethodPost, g.url, bytes.NewReader([]byte(`{}`)))
	req.Header.Set(headerWebhookID, ev.webhookID)
	req.Header.Set("webhook-id", ev.eventID)
	req.Header.Set("X-Webhookops-Attempt", strconv.Itoa(attempt))
	resp, err := g.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// Close stops the listeners and delivery loops (an event in flight is sent
// again on the next start, as at least once allows).
func (g *fakeGateway) Close() {
	if g.ingest != nil {
		g.ingest.Close()
	}
	if g.admin != nil {
		g.admin.Close()
	}
	g.mu.Lock()
	g.closed = true
	g.cond.Broadcast()
	g.mu.Unlock()
	g.wg.Wait()
	g.client.CloseIdleConnections()
	g.log.Close()
	g.delivered.Close()
}

// fakeAddrs returns an ingest and an admin address on loopback.
func fakeAddrs() (string, string, error) {
	a, err := freeLoopbackAddr()
	if err != nil {
		return "", "", err
	}
	b, err := freeLoopbackAddr()
	return a, b, err
}
