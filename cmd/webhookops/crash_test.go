package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/ingress/verify"
)

// buildBinary builds webhookops once per test binary run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "webhookops-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "webhookops")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type child struct {
	cmd    *exec.Cmd
	ingest string
	admin  string
	log    *bytes.Buffer
}

func startChild(t *testing.T, bin, dataDir, cfg string) *child {
	t.Helper()
	c := &child{ingest: freeAddr(t), admin: freeAddr(t), log: &bytes.Buffer{}}
	c.cmd = exec.Command(bin, "serve", "--data-dir", dataDir, "--config", cfg,
		"--ingest-addr", c.ingest, "--admin-addr", c.admin, "--log-level", "warn", "--log-format", "json")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + c.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			c.cmd.Wait()
			t.Fatalf("child never became ready:\n%s", c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// TestCrashKeepsEveryAcknowledgedEvent runs a real server as a child
// process, streams signed posts at it, kill -9s it at a random moment,
// restarts it on the same data dir, and checks that every event that got a
// 2xx is delivered, in order, and that nothing the sink accepted before a
// kill is delivered again except the one in flight at the kill.
func TestCrashKeepsEveryAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	const kills = 4

	var (
		mu        sync.Mutex
		delivered []int // keys in arrival order
		count     = map[int]int{}
	)
	sinkSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := strconv.Atoi(r.Header.Get("X-Webhook-Id"))
		if err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		delivered = append(delivered, k)
		count[k]++
		mu.Unlock()
		w.WriteHeader(200)
	}))
	defer sinkSrv.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	secret := []byte("crash-test-secret")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sources:
  - slug: s
    provider: generic
    secrets: [%q]
    routes:
      - destination: sink
destinations:
  - slug: sink
    url: %s/hook
    ordering: ordered
    backoff_base: 50ms
    backoff_max: 200ms
    max_attempts: 100
    allow_private_network: true
`, secret, sinkSrv.URL)), 0o600)
	dataDir := filepath.Join(dir, "data")

	client := &http.Client{Timeout: 5 * time.Second}
	var acked []int
	next := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := 0; round <= kills; round++ {
		c := startChild(t, bin, dataDir, cfg)
		stop := make(chan struct{})
		var sending sync.WaitGroup
		var roundAcked []int
		sending.Add(1)
		go func() {
			defer sending.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := next
				body := []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, k, bytes.Repeat([]byte("x"), 200)))
				req, _ := http.NewRequest("POST", "http://"+c.ingest+"/in/s", bytes.NewReader(body))
				req.Header.Set("X-Webhook-Id", strconv.Itoa(k))
				req.Header.Set("X-Webhookops-Signature", verify.SignGeneric(secret, body))
				resp, err := client.Do(req)
				next++
				if err != nil {
					continue // killed mid-request: not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					roundAcked = append(roundAcked, k)
				}
			}
		}()
		if round < kills {
			time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
			c.kill9()
			close(stop)
			sending.Wait()
		} else {
			time.Sleep(200 * time.Millisecond)
			close(stop)
			sending.Wait()
		}
		acked = append(acked, roundAcked...)
		if round == kills {
			// Wait for the backlog, then stop cleanly.
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				missing := 0
				for _, k := range acked {
					if count[k] == 0 {
						missing++
					}
				}
				mu.Unlock()
				if missing == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d acknowledged events never delivered\nserver log:\n%s", missing, c.log)
				}
				time.Sleep(20 * time.Millisecond)
			}
			c.cmd.Process.Signal(syscall.SIGTERM)
			c.cmd.Wait()
		}
	}
	if len(acked) < 20 {
		t.Fatalf("only %d events acknowledged: the test did not exercise much", len(acked))
	}

	mu.Lock()
	defer mu.Unlock()
	// Order: first deliveries appear in key order.
	seen := map[int]bool{}
	last := -1
	var dups int
	for _, k := range delivered {
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		if k < last {
			t.Fatalf("event %d delivered after %d: order broken (sequence %v)", k, last, delivered)
		}
		last = k
	}
	if dups > kills {
		t.Fatalf("%d redeliveries over %d kills: more than the one in flight per kill", dups, kills)
	}
	t.Logf("acknowledged %d events over %d kills; delivered %d distinct, %d redelivered", len(acked), kills, len(seen), dups)
}
