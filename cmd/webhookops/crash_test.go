package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/cmd/webhookops/internal/tlstest"
	"github.com/webhookops/webhookops/ingress/verify"
)

// built is one command, built once per test binary run.
type built struct {
	pkg   string   // relative to this directory
	env   []string // added to go build's environment
	flags []string // go build flags
	once  sync.Once
	path  string
	err   error
}

var builds = map[string]*built{
	"webhookops": {pkg: "."}, "agentd": {pkg: "../agentd"},
	// As the container image builds it: no cgo, so no libc.
	"webhookops-static": {pkg: ".", env: []string{"CGO_ENABLED=0"}},
	// With the version and commit a release build stamps (a relink of
	// the packages built for webhookops).
	"webhookops-stamped": {pkg: ".", flags: []string{"-ldflags=-X main.version=v1.2.3-test -X main.commit=0123456789abcdef0123456789abcdef01234567"}},
}

func (b *built) build(name string) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", name+"-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build", "-o", b.path}, b.flags...), b.pkg)...)
		cmd.Env = append(os.Environ(), b.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	})
}

// buildCommands builds the named commands (keys of builds) in parallel,
// each once, and returns their paths.
func buildCommands(t *testing.T, names ...string) []string {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { builds[n].build(n) })
	}
	wg.Wait()
	paths := make([]string, len(names))
	for i, n := range names {
		if err := builds[n].err; err != nil {
			t.Fatal(err)
		}
		paths[i] = builds[n].path
	}
	return paths
}

// buildBinary builds webhookops.
func buildBinary(t *testing.T) string { return buildCommands(t, "webhookops")[0] }

func freeAddr(t *testing.T) string { return tlstest.FreeAddr(t) }

// logBuf collects a child's output; the test reads it while the child
// writes.
type logBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type child struct {
	cmd    *exec.Cmd
	ingest string
	admin  string
	log    *logBuf
	exited chan struct{} // closed once the process is waited for
}

func startChild(t *testing.T, bin, dataDir, cfg string, extra ...string) *child {
	t.Helper()
	return startServe(t, bin, freeAddr(t), freeAddr(t), append([]string{"--data-dir", dataDir, "--config", cfg}, extra...)...)
}

// startServe runs `webhookops serve` on the given ingest and admin
// addresses with the extra flags, and waits until it is ready.
func startServe(t *testing.T, bin, ingest, admin string, extra ...string) *child {
	t.Helper()
	return startServeOpts(t, bin, ingest, admin, serveOpts{args: extra})
}

// serveOpts are what some tests change about a child server.
type serveOpts struct {
	args   []string     // flags after the addresses and the log flags
	env    []string     // added to the test's environment
	stderr *os.File     // the child's stderr itself (a terminal); nil: collected in child.log
	admin  *http.Client // reaches the admin listener (TLS); nil: plain HTTP
}

func startServeOpts(t *testing.T, bin, ingest, admin string, o serveOpts) *child {
	t.Helper()
	c := &child{ingest: ingest, admin: admin, log: &logBuf{}, exited: make(chan struct{})}
	args := append([]string{"serve", "--ingest-addr", c.ingest, "--admin-addr", c.admin, "--log-level", "warn", "--log-format", "json"}, o.args...)
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if o.stderr != nil {
		c.cmd.Stderr = o.stderr
	}
	c.cmd.Env = append(os.Environ(), o.env...)
	// A process group of its own: a test that SIGSTOPs a child must not
	// have the kernel SIGHUP it (and the others) when the group it would
	// share with the test becomes orphaned around it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	readyURL, hc := "http://"+c.admin+"/readyz", http.DefaultClient
	if o.admin != nil {
		readyURL, hc = "https://"+c.admin+"/readyz", o.admin
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		select {
		case <-c.exited:
			t.Fatalf("child exited before it was ready (%v):\n%s", c.cmd.ProcessState, c.log)
		default:
		}
		if time.Now().After(deadline) {
			c.kill9()
			t.Fatalf("child never became ready:\n%s", c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// stop sends SIGTERM and waits for the child to exit; a graceful stop
// exits 0.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("child did not stop within 30 s of SIGTERM:\n%s", c.log)
	}
	if !c.cmd.ProcessState.Success() {
		t.Fatalf("child exited with %v after SIGTERM:\n%s", c.cmd.ProcessState, c.log)
	}
}

// TestCrashKeepsEveryAcknowledgedEvent runs a real server as a child
// process, streams signed posts at it from several senders, each one post
// at a time, kill -9s it at a random moment, restarts it on the same data
// dir, and checks that every event that got a 2xx is delivered; that each
// sender's events arrive in the order they were acknowledged (first
// arrivals: an event acknowledged before the next one was sent is
// delivered first); that a kill re-sends at most the ordered pipeline's
// events, those sent (or handed to the sending loop) with their outcome
// not yet durable (--ordered-pipeline, small here so the bound is tight);
// and that a re-send carries the event's webhook-id. A pipeline of 4 holds
// the destination to a few events per group commit, so the senders outrun
// it and every kill finds a backlog with the pipeline full (with 256 the
// same run re-sends more than 4 per kill).
func TestCrashKeepsEveryAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	const (
		kills    = 4
		senders  = 8
		pipeline = 4
	)

	type key struct{ sender, n int }
	var (
		mu        sync.Mutex
		delivered []key // in arrival order
		count     = map[key]int{}
		ids       = map[key]string{} // the webhook-id of its first delivery
		idChanged []key
	)
	sinkSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k key
		if _, err := fmt.Sscanf(r.Header.Get("X-Webhook-Id"), "%d-%d", &k.sender, &k.n); err != nil {
			w.WriteHeader(400)
			return
		}
		id := r.Header.Get("Webhook-Id")
		mu.Lock()
		delivered = append(delivered, k)
		count[k]++
		if first, ok := ids[k]; !ok {
			ids[k] = id
		} else if first != id {
			idChanged = append(idChanged, k)
		}
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
	var acked []key
	next := make([]int, senders)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var c *child
	for round := 0; round <= kills; round++ {
		c = startChild(t, bin, dataDir, cfg, "--ordered-pipeline", fmt.Sprint(pipeline))
		stop := make(chan struct{})
		var sending sync.WaitGroup
		roundAcked := make([][]key, senders)
		for s := range senders {
			sending.Add(1)
			go func() {
				defer sending.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					k := key{s, next[s]}
					next[s]++
					body := []byte(fmt.Sprintf(`{"sender":%d,"n":%d,"pad":"%s"}`, k.sender, k.n, bytes.Repeat([]byte("x"), 200)))
					req, _ := http.NewRequest("POST", "http://"+c.ingest+"/in/s", bytes.NewReader(body))
					req.Header.Set("X-Webhook-Id", fmt.Sprintf("%d-%d", k.sender, k.n))
					req.Header.Set("X-Webhookops-Signature", verify.SignGeneric(secret, body))
					resp, err := client.Do(req)
					if err != nil {
						continue // killed mid-request: not acknowledged
					}
					resp.Body.Close()
					if resp.StatusCode/100 == 2 {
						roundAcked[s] = append(roundAcked[s], k)
					}
				}
			}()
		}
		if round < kills {
			time.Sleep(time.Duration(200+rng.IntN(400)) * time.Millisecond)
			c.kill9()
		} else {
			time.Sleep(300 * time.Millisecond)
		}
		close(stop)
		sending.Wait()
		for _, a := range roundAcked {
			acked = append(acked, a...)
		}
	}
	// Wait for the backlog, then stop cleanly.
	deadline := time.Now().Add(60 * time.Second)
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
	c.stop(t)
	if len(acked) < 20*senders {
		t.Fatalf("only %d events acknowledged: the test did not exercise much", len(acked))
	}

	mu.Lock()
	defer mu.Unlock()
	seen := map[key]bool{}
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	var dups int
	for _, k := range delivered {
		if seen[k] {
			dups++
			continue
		}
		seen[k] = true
		if k.n < last[k.sender] {
			t.Fatalf("sender %d's event %d delivered after its %d: order broken", k.sender, k.n, last[k.sender])
		}
		last[k.sender] = k.n
	}
	if dups > kills*pipeline {
		t.Fatalf("%d redeliveries over %d kills: more than the %d whose outcome may not be durable per kill", dups, kills, pipeline)
	}
	if len(idChanged) > 0 {
		t.Fatalf("%d events sent again with another webhook-id, first %v", len(idChanged), idChanged[0])
	}
	t.Logf("acknowledged %d events from %d senders over %d kills; delivered %d distinct, %d redelivered", len(acked), senders, kills, len(seen), dups)
}

// TestOrderedPipelineFlag: a pipeline under one is refused before anything
// starts, from the flag and from the environment alike.
func TestOrderedPipelineFlag(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{args: []string{"--ordered-pipeline", "0"}},
		{env: "WEBHOOKOPS_ORDERED_PIPELINE=-3"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		cmd := exec.Command(bin, append([]string{"serve", "--data-dir", dir, "--ingest-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, tc.args...)...)
		cmd.Env = append(os.Environ(), tc.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("--ordered-pipeline must be at least 1")) {
			t.Fatalf("%v %s: err %v, output:\n%s", tc.args, tc.env, err, out)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%v %s: the data dir was created (%v)", tc.args, tc.env, err)
		}
	}
}
