package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

var clusterLong = flag.Bool("cluster-long", false, "run the cluster process tests for longer, with more kill cycles")

// clusterNode is one member's addresses and data dir, kept across restarts.
type clusterNode struct {
	tlsArgs             []string
	extraArgs           []string // more serve flags, on every start
	sealKey             string   // the cluster sealing key file, shared
	id                  int
	join                bool // added with cluster add-node: starts with --join
	raft, ingest, admin string
	dataDir             string
	c                   *child
}

// startClusterNodes starts n members; with mTLS, their certificates come
// from the `cluster ca` and `cluster cert` commands.
func startClusterNodes(t *testing.T, bin, cfg string, n int, mTLS bool, extra ...string) []*clusterNode {
	t.Helper()
	return startClusterNodesEach(t, bin, cfg, n, mTLS, func(*clusterNode) []string { return extra })
}

// startClusterNodesEach is startClusterNodes with each member's own extra
// serve flags: extra is called once per member, before any starts.
func startClusterNodesEach(t *testing.T, bin, cfg string, n int, mTLS bool, extra func(*clusterNode) []string) []*clusterNode {
	t.Helper()
	nodes := newClusterNodes(t, bin, n, mTLS)
	for _, nd := range nodes {
		nd.extraArgs = extra(nd)
	}
	startAll(t, bin, cfg, nodes)
	return nodes
}

// newClusterNodes makes n members' addresses and data dirs (and their
// certificates with mTLS) without starting them.
func newClusterNodes(t *testing.T, bin string, n int, mTLS bool) []*clusterNode {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	seal := filepath.Join(dir, "seal.key")
	if mTLS {
		if out, err := exec.Command(bin, "cluster", "ca", "--dir", ca).CombinedOutput(); err != nil {
			t.Fatalf("cluster ca: %v\n%s", err, out)
		}
		seal = filepath.Join(ca, "seal.key") // `cluster ca` makes it
	} else if out, err := exec.Command(bin, "cluster", "seal-key", "--out", seal).CombinedOutput(); err != nil {
		t.Fatalf("cluster seal-key: %v\n%s", err, out)
	}
	nodes := make([]*clusterNode, n)
	for i := range nodes {
		nodes[i] = &clusterNode{id: i + 1, sealKey: seal, raft: freeAddr(t), ingest: freeAddr(t), admin: freeAddr(t),
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1))}
		if mTLS {
			id := strconv.Itoa(i + 1)
			if out, err := exec.Command(bin, "cluster", "cert", "--dir", ca, "--node-id", id, "--host", "127.0.0.1").CombinedOutput(); err != nil {
				t.Fatalf("cluster cert: %v\n%s", err, out)
			}
			nodes[i].tlsArgs = []string{"--cluster-ca", filepath.Join(ca, "ca.pem"),
				"--cluster-cert", filepath.Join(ca, "node"+id+".pem"), "--cluster-key", filepath.Join(ca, "node"+id+"-key.pem")}
		}
	}
	// Whatever the test leaves running (stopped ones included) is killed.
	t.Cleanup(func() {
		for _, nd := range nodes {
			if nd.c == nil {
				continue
			}
			nd.c.cmd.Process.Signal(syscall.SIGCONT)
			select {
			case <-nd.c.exited:
			default:
				nd.c.kill9()
			}
		}
	})
	return nodes
}

// startAll starts nodes as the cluster's initial members.
func startAll(t *testing.T, bin, cfg string, nodes []*clusterNode) {
	t.Helper()
	for _, nd := range nodes {
		nd.start(t, bin, cfg, memberList(nodes))
	}
}

// memberList is the --initial-members value of nodes.
func memberList(nodes []*clusterNode) string {
	var members []string
	for _, nd := range nodes {
		members = append(members, fmt.Sprintf("%d=%s", nd.id, nd.raft))
	}
	return strings.Join(members, ",")
}

func (nd *clusterNode) start(t *testing.T, bin, cfg, members string) {
	t.Helper()
	args := append([]string{"--data-dir", nd.dataDir, "--config", cfg,
		"--cluster-addr", nd.raft, "--node-id", strconv.Itoa(nd.id),
		"--cluster-partitions", "4", "--admin-token", e2eToken, "--cluster-seal-key", nd.sealKey}, nd.tlsArgs...)
	args = append(args, nd.extraArgs...)
	if nd.join {
		args = append(args, "--join")
	} else {
		args = append(args, "--initial-members", members)
	}
	nd.c = startServe(t, bin, nd.ingest, nd.admin, args...)
}

type ingestAnswer struct {
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
}

// settled: every member reachable, every partition on three replicas with
// a leader whose takeover is applied on the answering node.
func settled(st api.ClusterStatus) bool {
	for _, n := range st.Nodes {
		if !n.Reachable {
			return false
		}
	}
	for _, p := range st.Partitions {
		if len(p.Replicas) != 3 || p.Leader == 0 || p.Owner != p.Leader || p.OwnerTerm != p.Term {
			return false
		}
	}
	return len(st.Nodes) == 3
}

func postSigned(client *http.Client, addr string, secret []byte, key string) (int, ingestAnswer, error) {
	body := []byte(fmt.Sprintf(`{"key":%q}`, key))
	req, _ := http.NewRequest("POST", "http://"+addr+"/in/s", bytes.NewReader(body))
	req.Header.Set("X-Webhook-Id", key)
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric(secret, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, ingestAnswer{}, err
	}
	defer resp.Body.Close()
	var a ingestAnswer
	json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a, nil
}

// TestClusterKeepsEveryAcknowledgedEvent runs three cluster members as
// child processes (raft over mutual TLS from the cluster CA commands), posts to all of them, kill -9s one, keeps posting to the
// other two, restarts it and checks, in every member's store, that each
// event that got a 2xx is stored on a quorum, under one event id per key,
// the same on every replica that holds it.
func TestClusterKeepsEveryAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers as child processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	secret := []byte("cluster-test-secret")
	os.WriteFile(cfg, []byte(fmt.Sprintf("sources:\n  - slug: s\n    provider: generic\n    secrets: [%q]\n", secret)), 0o600)
	began := time.Now()
	nodes := startClusterNodes(t, bin, cfg, 3, true)
	t.Logf("%v: three members ready", time.Since(began).Round(time.Millisecond))
	members := memberList(nodes)

	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu    sync.Mutex
		acked = map[string]string{} // key -> event id
	)
	// Wait until every partition has a leader: a post to each node on a
	// spread of keys succeeds.
	deadline := time.Now().Add(30 * time.Second)
	var firstWarm string // the first acknowledged (a new cluster answers 404 until its config is replicated)
	for i := 0; ; i++ {
		key := fmt.Sprintf("warm-%d", i)
		code, a, err := postSigned(client, nodes[i%3].ingest, secret, key)
		// 200 "duplicate" too: a proposal retried across an election
		// finds its own first try committed.
		if err == nil && code/100 == 2 {
			if firstWarm == "" {
				firstWarm = key
			}
			acked[key] = a.EventID
			if len(acked) >= 12 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never took writes (last: %d %v)\n%s", code, err, nodes[0].c.log)
		}
	}

	t.Logf("%v: every partition took writes", time.Since(began).Round(time.Millisecond))
	cycles, phase := 1, 1500*time.Millisecond
	if *clusterLong {
		cycles, phase = 5, 5*time.Second
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var seq int
	send := func(stop <-chan struct{}, live []*clusterNode, wg *sync.WaitGroup) {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					seq++
					key := fmt.Sprintf("k-%d", seq)
					mu.Unlock()
					nd := live[(w+i)%len(live)]
					code, a, err := postSigned(client, nd.ingest, secret, key)
					if err == nil && code/100 == 2 {
						mu.Lock()
						acked[key] = a.EventID
						mu.Unlock()
					}
				}
			}()
		}
	}
	var failover []time.Duration
	for cycle := 0; cycle < cycles; cycle++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		send(stop, nodes, &wg)
		time.Sleep(phase / 2)
		victim := nodes[rng.IntN(len(nodes))]
		victim.c.kill9()
		killedAt := time.Now()
		close(stop)
		wg.Wait()
		var live []*clusterNode
		for _, nd := range nodes {
			if nd != victim {
				live = append(live, nd)
			}
		}
		// Every partition writable again: one key per partition-ish spread,
		// posted to the survivors until all succeed.
		for i := 0; ; i++ {
			allOK := true
			for j := 0; j < 8; j++ {
				key := fmt.Sprintf("probe-%d-%d", cycle, j)
				code, a, err := postSigned(client, live[j%2].ingest, secret, key)
				if err != nil || code/100 != 2 {
					allOK = false
					continue
				}
				mu.Lock()
				acked[key] = a.EventID
				mu.Unlock()
			}
			if allOK {
				failover = append(failover, time.Since(killedAt))
				break
			}
			if time.Since(killedAt) > 20*time.Second {
				t.Fatalf("cycle %d: survivors never took writes after node %d was killed", cycle, victim.id)
			}
		}
		stop = make(chan struct{})
		send(stop, live, &wg)
		time.Sleep(phase / 2)
		victim.start(t, bin, cfg, members)
		time.Sleep(phase / 2)
		close(stop)
		wg.Wait()
	}

	// A duplicate sent to another node answers with the original id.
	for key, id := range map[string]string{firstWarm: acked[firstWarm]} {
		for _, nd := range nodes {
			code, a, err := postSigned(client, nd.ingest, secret, key)
			if err != nil || code != 200 || !a.Duplicate || a.EventID != id {
				t.Fatalf("duplicate of %s at node %d: %d %+v %v (want 200, %s)", key, nd.id, code, a, err, id)
			}
		}
	}
	// cluster status, from the CLI, on the restarted member: everyone
	// reachable, every partition replicated three times with a leader that
	// owns it (its takeover applied). Leadership may still be settling.
	var st api.ClusterStatus
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := exec.Command(bin, "cluster", "status", "--server", "http://"+nodes[0].admin, "--token", e2eToken, "--json").CombinedOutput()
		if err != nil {
			t.Fatalf("cluster status: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("cluster status --json: %v\n%s", err, out)
		}
		if settled(st) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never settled: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(st.Nodes) != 3 || len(st.Partitions) != 4 {
		t.Fatalf("cluster status: %+v", st)
	}
	// Let the restarted member catch up, then stop everyone.
	time.Sleep(time.Second)
	t.Logf("%v: status settled", time.Since(began).Round(time.Millisecond))
	for _, nd := range nodes {
		nd.c.stop(t)
	}
	t.Logf("%v: all stopped", time.Since(began).Round(time.Millisecond))

	// key -> event id per store, and which event ids each store holds.
	perNode := make([]map[string]string, len(nodes))
	for i, nd := range nodes {
		db, err := wal.Open(nd.dataDir, wal.Config{})
		if err != nil {
			t.Fatal(err)
		}
		perNode[i] = map[string]string{}
		_, _, err = db.ListEvents(0, 1<<30, func(e *wal.Event) bool {
			if prev, ok := perNode[i][e.IdemKey]; ok {
				t.Errorf("node %d holds two events for key %s: %s and %s", nd.id, e.IdemKey, prev, e.ID())
			}
			perNode[i][e.IdemKey] = e.ID()
			return false
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%v: stores read", time.Since(began).Round(time.Millisecond))
	for key, id := range acked {
		copies := 0
		for i := range nodes {
			got, ok := perNode[i][key]
			if !ok {
				continue
			}
			if got != id {
				t.Fatalf("node %d stores key %s as %s; the sender was told %s", nodes[i].id, key, got, id)
			}
			copies++
		}
		if copies < 2 {
			t.Fatalf("acknowledged key %s (%s) is on %d of 3 replicas", key, id, copies)
		}
	}
	if len(acked) < 50 {
		t.Fatalf("only %d events acknowledged: the test did not exercise much", len(acked))
	}
	t.Logf("acknowledged %d events over %d kill cycles; writable again after %v", len(acked), cycles, failover)
}

// TestClusterReplacesADeadNode: a member dies with its disk; `cluster
// remove-node` takes it out of every partition, `cluster add-node` adds a
// replacement under a new id, which starts with --join on an empty data
// dir, catches up, and carries the cluster when another member dies.
func TestClusterReplacesADeadNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs four servers as child processes")
	}
	bin := buildBinary(t)
	var (
		mu  sync.Mutex
		got = map[string]int{}
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("X-Webhook-Id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	secret := []byte("cluster-replace-secret")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sources:
  - slug: s
    provider: generic
    secrets: [%q]
    routes:
      - destination: d
destinations:
  - slug: d
    url: %s/hook
    ordering: ordered
    backoff_base: 50ms
    backoff_max: 200ms
    allow_private_network: true
`, secret, sink.URL)), 0o600)
	nodes := startClusterNodes(t, bin, cfg, 3, false)
	client := &http.Client{Timeout: 5 * time.Second}
	var acked, ids []string
	post := func(live []*clusterNode, prefix string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			key := fmt.Sprintf("%s-%d", prefix, i)
			for try := 0; ; try++ {
				code, a, err := postSigned(client, live[(i+try)%len(live)].ingest, secret, key)
				if err == nil && code/100 == 2 {
					acked, ids = append(acked, key), append(ids, a.EventID)
					break
				}
				if try > 300 {
					t.Fatalf("%s never acknowledged: %d %v", key, code, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(append([]string{"cluster"}, args...), "--server", "http://"+nodes[0].admin, "--token", e2eToken)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cluster %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	post(nodes, "before", 40)

	// Node 3 dies with its disk.
	nodes[2].c.kill9()
	os.RemoveAll(nodes[2].dataDir)
	cli("remove-node", "--id", "3")
	repl := &clusterNode{id: 4, join: true, sealKey: nodes[0].sealKey, raft: freeAddr(t), ingest: freeAddr(t), admin: freeAddr(t), dataDir: filepath.Join(dir, "node4")}
	out := cli("add-node", "--id", "4", "--address", repl.raft)
	if !strings.Contains(out, repl.raft) {
		t.Fatalf("add-node did not show the new member:\n%s", out)
	}
	if _, err := exec.Command(bin, "cluster", "add-node", "--id", "3", "--address", freeAddr(t), "--server", "http://"+nodes[0].admin, "--token", e2eToken).CombinedOutput(); err == nil {
		t.Fatal("a removed node id was added again")
	}
	repl.start(t, bin, cfg, "")
	nodes = []*clusterNode{nodes[0], nodes[1], repl}
	t.Cleanup(func() {
		select {
		case <-repl.c.exited:
		default:
			repl.c.kill9()
		}
	})

	// The replacement catches up: every partition on 1, 2 and 4, and it
	// has applied what node 1 has.
	for deadline := time.Now().Add(30 * time.Second); ; {
		a, errA := clusterStatus(nodes[0])
		b, errB := clusterStatus(repl)
		ok := errA == nil && errB == nil && len(a.Partitions) == 4 && len(b.Partitions) == 4
		for i := 0; ok && i < 4; i++ {
			ok = slices.Equal(a.Partitions[i].Replicas, []uint64{1, 2, 4}) && b.Partitions[i].AppliedIndex >= a.Partitions[i].AppliedIndex
		}
		// Status names each destination under its partition, once (from
		// the configuration, which the replacement catches up with through
		// the metadata shard, maybe after the partitions).
		var listed []string
		for _, p := range b.Partitions {
			listed = append(listed, p.Destinations...)
		}
		if ok && slices.Equal(listed, []string{"d"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replacement never caught up: %+v %v / %+v %v\n%s", a, errA, b, errB, repl.c.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The metadata shard records the members add-node and remove-node
	// left, and the replacement reads them from its own store.
	eventually(t, 10*time.Second, "members 1, 2 and 4 recorded, on the replacement", func() error {
		st, err := clusterStatus(repl)
		if err != nil {
			return err
		}
		var recorded []uint64
		for _, n := range st.Nodes {
			if n.Recorded {
				recorded = append(recorded, n.ID)
			}
		}
		if m := st.Metadata; m == nil || m.Leader == 0 || !slices.Equal(m.Replicas, []uint64{1, 2, 4}) || !slices.Equal(recorded, []uint64{1, 2, 4}) {
			return fmt.Errorf("metadata %+v, recorded %v", st.Metadata, recorded)
		}
		return nil
	})
	post(nodes, "joined", 20)

	// /metrics: each partition is delivered by exactly one member, and only
	// that member reports the destination's queue.
	scrape := func(nd *clusterNode) string {
		req, _ := http.NewRequest("GET", "http://"+nd.admin+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		resp, err := client.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		delivering, queues := map[string]int{}, 0
		for _, nd := range nodes {
			text := scrape(nd)
			for p := range 4 {
				if strings.Contains(text, fmt.Sprintf("webhookops_cluster_delivering{partition=\"%d\"} 1", p)) {
					delivering[strconv.Itoa(p)]++
				}
			}
			if strings.Contains(text, `webhookops_queue_depth{destination="d"}`) {
				queues++
			}
		}
		ok := queues == 1 && len(delivering) == 4
		for _, n := range delivering {
			ok = ok && n == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: partitions delivered by %v, destination queue reported by %d members; want each once\n%s", delivering, queues, scrape(nodes[0]))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Node 1 dies too: 2 and 4 are a quorum of 1, 2, 4.
	nodes[0].c.kill9()
	post(nodes[1:], "after", 20)
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		missing := 0
		for _, k := range acked {
			if got[k] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never delivered\n%s", missing, len(acked), repl.c.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The admin API of any member reads every partition: each event,
	// whichever member took it and whichever delivered it, is delivered.
	for _, nd := range []*clusterNode{nodes[1], repl} {
		for _, id := range ids {
			var ev struct {
				Status string `json:"status"`
			}
			for deadline := time.Now().Add(10 * time.Second); ; {
				req, _ := http.NewRequest("GET", "http://"+nd.admin+"/api/v1/events/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+e2eToken)
				if resp, err := client.Do(req); err == nil {
					json.NewDecoder(resp.Body).Decode(&ev)
					resp.Body.Close()
				}
				if ev.Status == "delivered" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("member %d: event %s is %q, want delivered", nd.id, id, ev.Status)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	nodes[1].c.stop(t)
	repl.c.stop(t)
	db, err := wal.Open(repl.dataDir, wal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	have := map[string]bool{}
	if _, _, err := db.ListEvents(0, 1<<30, func(e *wal.Event) bool { have[e.IdemKey] = true; return false }); err != nil {
		t.Fatal(err)
	}
	for _, k := range acked {
		if !have[k] {
			t.Fatalf("the replacement's store lacks acknowledged %s", k)
		}
	}
}

// A data dir is either a single node's or a cluster member's: serve
// refuses to start a member on a single node's events (no replica knows
// them) and a single node on a member's replicas (it would deliver what
// the cluster delivers).
func TestClusterDataDirMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	secret := []byte("mode-secret")
	os.WriteFile(cfg, []byte(fmt.Sprintf("sources:\n  - slug: s\n    provider: generic\n    secrets: [%q]\n", secret)), 0o600)
	refused := func(want string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"serve", "--ingest-addr", freeAddr(t), "--admin-addr", freeAddr(t), "--config", cfg, "--admin-token", e2eToken}, args...)...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("serve %v started; want it refused", args)
		}
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("serve %v: %v\n%s\nwant a refusal saying %q", args, err, out, want)
		}
	}

	single := filepath.Join(dir, "single")
	c := startServe(t, bin, freeAddr(t), freeAddr(t), "--data-dir", single, "--config", cfg, "--admin-token", e2eToken)
	if code, _, err := postSigned(&http.Client{Timeout: 5 * time.Second}, c.ingest, secret, "k1"); err != nil || code != 202 {
		t.Fatalf("post to the single node: %d %v", code, err)
	}
	c.stop(t)
	raft := freeAddr(t)
	refused("holds a single node's data", "--data-dir", single, "--cluster-addr", raft, "--node-id", "1",
		"--initial-members", "1="+raft, "--cluster-partitions", "64")
	refused("--cluster-partitions is 16", "--data-dir", single, "--cluster-addr", raft, "--node-id", "1", "--initial-members", "1="+raft)

	seal := filepath.Join(dir, "seal.key")
	if out, err := exec.Command(bin, "cluster", "seal-key", "--out", seal).CombinedOutput(); err != nil {
		t.Fatalf("cluster seal-key: %v\n%s", err, out)
	}
	member := &clusterNode{id: 1, sealKey: seal, raft: raft, ingest: freeAddr(t), admin: freeAddr(t), dataDir: filepath.Join(dir, "member")}
	member.start(t, bin, cfg, "1="+raft)
	member.c.stop(t)
	refused("belongs to cluster member 1", "--data-dir", member.dataDir)
	refused("need --cluster-addr", "--data-dir", member.dataDir, "--node-id", "1")
}
