package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	id                  int
	raft, ingest, admin string
	dataDir             string
	c                   *child
}

// startClusterNodes starts n members; with mTLS, their certificates come
// from the `cluster ca` and `cluster cert` commands.
func startClusterNodes(t *testing.T, bin, cfg string, n int, mTLS bool) []*clusterNode {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if mTLS {
		if out, err := exec.Command(bin, "cluster", "ca", "--dir", ca).CombinedOutput(); err != nil {
			t.Fatalf("cluster ca: %v\n%s", err, out)
		}
	}
	nodes := make([]*clusterNode, n)
	var members []string
	for i := range nodes {
		nodes[i] = &clusterNode{id: i + 1, raft: freeAddr(t), ingest: freeAddr(t), admin: freeAddr(t),
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1))}
		members = append(members, fmt.Sprintf("%d=%s", i+1, nodes[i].raft))
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
	for _, nd := range nodes {
		nd.start(t, bin, cfg, strings.Join(members, ","))
	}
	return nodes
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
		"--cluster-addr", nd.raft, "--node-id", strconv.Itoa(nd.id), "--initial-members", members,
		"--cluster-partitions", "4", "--admin-token", e2eToken}, nd.tlsArgs...)
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
	for i := 0; ; i++ {
		key := fmt.Sprintf("warm-%d", i)
		code, a, err := postSigned(client, nodes[i%3].ingest, secret, key)
		if err == nil && code == 202 {
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
	for key, id := range map[string]string{"warm-0": acked["warm-0"]} {
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
