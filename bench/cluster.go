package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/webhookops/webhookops/admin/api"
)

// ScenarioCluster is not in Scenarios (`bench all`): it runs four servers.
const ScenarioCluster = "cluster"

const clusterBenchToken = "whops_bench-cluster-token-0123456789"

// cluster measures three cluster members on this machine against one
// single node under the same load, in the same run: ingest (the headline,
// with the ratio) and e2e to a loopback sink destination. Then, with a
// steady trickle of events going to the others, it kill -9s the member
// that leads the sink destination's partition (the one delivering it) and
// measures how long until every partition takes writes again through the
// survivors, and until the sink receives the first event sent after the
// kill (deliveries resumed on the new leader).
func (r *runner) cluster(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioCluster, Mode: r.mode(), Unit: "req/s"}
	if r.opts.Target != "" {
		return res, fmt.Errorf("%w: the cluster scenario starts its own nodes (no --target)", ErrNotAvailable)
	}
	bin, err := serverBin(ctx, r.opts.ServerBin)
	if err != nil {
		return res, err
	}
	sk, err := startSink(r.opts.SinkAddr)
	if err != nil {
		return res, err
	}
	defer sk.Close()
	cfg := serverConfig(r.opts.Source, r.opts.Secret, []string{"sink"}, []destConfig{{
		slug: "sink", url: sk.hookURL(), ordering: r.opts.Ordering, maxInFlight: r.opts.MaxInFlight,
		timeout: 5 * time.Second, maxAttempts: 10, backoffBase: 100 * time.Millisecond,
	}})

	// One node.
	dir, cleanup, err := r.tempDir("cluster-single")
	if err != nil {
		return res, err
	}
	defer cleanup()
	spec, err := newChildSpec(bin, dir, cfg, r.opts.ServerLog)
	if err != nil {
		return res, err
	}
	single, err := spec.start()
	if err != nil {
		return res, err
	}
	if err := single.waitReady(ctx, 60*time.Second); err != nil {
		single.kill()
		return res, err
	}
	one, oneSink, err := r.e2eOver(ctx, "cluster: one node", sk, []childSpec{spec})
	_ = single.stop(10 * time.Second)
	if err != nil {
		return res, fmt.Errorf("bench: one node: %w", err)
	}

	// Three members.
	specs := make([]childSpec, 3)
	raft := make([]string, 3)
	members := ""
	for i := range specs {
		if raft[i], err = freeLoopbackAddr(); err != nil {
			return res, err
		}
		if i > 0 {
			members += ","
		}
		members += fmt.Sprintf("%d=%s", i+1, raft[i])
	}
	nodes := make([]*child, 0, 3)
	defer func() {
		for _, c := range nodes {
			c.kill()
		}
	}()
	keyDir, clKey, err := r.tempDir("cluster-seal")
	if err != nil {
		return res, err
	}
	defer clKey()
	sealKey := filepath.Join(keyDir, "seal.key")
	if out, err := exec.Command(bin, "cluster", "seal-key", "--out", sealKey).CombinedOutput(); err != nil {
		return res, fmt.Errorf("bench: cluster seal-key: %v: %s", err, out)
	}
	for i := range specs {
		d, cl, err := r.tempDir("cluster-node" + strconv.Itoa(i+1))
		if err != nil {
			return res, err
		}
		defer cl()
		if specs[i], err = newChildSpec(bin, d, cfg, r.opts.ServerLog); err != nil {
			return res, err
		}
		specs[i].extraArgs = []string{"--cluster-addr", raft[i], "--node-id", strconv.Itoa(i + 1),
			"--initial-members", members, "--admin-token", clusterBenchToken, "--cluster-seal-key", sealKey}
		c, err := specs[i].start()
		if err != nil {
			return res, err
		}
		nodes = append(nodes, c)
	}
	for _, c := range nodes {
		if err := c.waitReady(ctx, 60*time.Second); err != nil {
			return res, err
		}
	}
	all := []int{0, 1, 2}
	if _, err := r.untilWritable(ctx, specs, all, 60*time.Second); err != nil {
		return res, fmt.Errorf("bench: the cluster never took writes: %w", err)
	}
	three, threeSink, err := r.e2eOver(ctx, "cluster: three members", sk, specs)
	if err != nil {
		return res, fmt.Errorf("bench: three members: %w", err)
	}
	fill(&res, three, "req/s")
	fillBaseline(&res, one.throughput(), one.rec.latency())
	for _, m := range []struct {
		name string
		lr   loadResult
		st   sinkStats
	}{{"one", one, oneSink}, {"three", three, threeSink}} {
		name, lr, st := m.name, m.lr, m.st
		if d := st.last.Sub(lr.start); d > 0 {
			res.setExtra("e2e_"+name+"_deliveries_per_s", float64(st.unique)/d.Seconds())
		}
		res.setExtra("e2e_"+name+"_p50_ms", st.latency.P50)
		res.setExtra("e2e_"+name+"_p99_ms", st.latency.P99)
		res.setExtra("e2e_"+name+"_duplicates", float64(st.receipts-st.unique))
	}

	// Failover: kill the member delivering the sink destination.
	st, err := clusterStatus(ctx, specs[0].adminAddr)
	if err != nil {
		return res, err
	}
	victim := -1
	for _, p := range st.Partitions {
		if slices.Contains(p.Destinations, "sink") && p.Leader >= 1 && p.Leader <= 3 {
			victim = int(p.Leader - 1)
		}
	}
	if victim < 0 {
		return res, errors.New("bench: no member leads the sink destination's partition")
	}
	var live []int
	for i := range specs {
		if i != victim {
			live = append(live, i)
		}
	}
	after := runPrefix()
	sk.resetStats(time.Time{}, after)
	stop := r.trickle(ctx, specs, live, after)
	nodes[victim].kill()
	killed := time.Now()
	took, err := r.untilWritable(ctx, specs, live, 30*time.Second)
	if err != nil {
		stop()
		return res, fmt.Errorf("bench: after killing node %d: %w", victim+1, err)
	}
	err = sk.waitUnique(ctx, 1, 30*time.Second)
	stop()
	if err != nil {
		return res, fmt.Errorf("bench: no delivery after killing node %d: %w", victim+1, err)
	}
	res.setExtra("failover_writable_s", took.Sub(killed).Seconds())
	res.setExtra("failover_delivering_s", sk.stats().first.Sub(killed).Seconds())
	res.Mode += ", ratio = three members / one node"
	return res, ctx.Err()
}

// e2eOver measures the load spread over the members of specs, every
// request a new event for the sink destination, and waits for the sink to
// receive every accepted one.
func (r *runner) e2eOver(ctx context.Context, label string, sk *sink, specs []childSpec) (loadResult, sinkStats, error) {
	var next atomic.Int64
	signers := func(prefix string) func() sendFunc {
		ss := make([]*signer, len(specs))
		for i := range ss {
			ss[i] = newSigner(r.client, specs[i].ingestURL(), r.opts.Source, r.opts.Secret, r.opts.BodySize)
			ss[i].prefix = prefix // one run prefix: the sink counts them together
		}
		return func() sendFunc { return ss[next.Add(1)%int64(len(ss))].newWorker() }
	}
	prefix := runPrefix()
	sk.resetStats(time.Time{}, prefix)
	lr := r.measure(ctx, label, func(warmup bool) load {
		if warmup {
			return r.phase(signers(runPrefix()))
		}
		return r.phase(signers(prefix))
	})
	err := sk.waitUnique(ctx, lr.rec.ok.Load(), r.opts.DrainTimeout)
	return lr, sk.stats(), err
}

// trickle posts events to the members in live one after another (a failed
// post is dropped) until the returned stop is called.
func (r *runner) trickle(ctx context.Context, specs []childSpec, live []int, prefix string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sends := make([]sendFunc, len(live))
		for i, m := range live {
			s := newSigner(r.client, specs[m].ingestURL(), r.opts.Source, r.opts.Secret, r.opts.BodySize)
			s.prefix = prefix
			sends[i] = s.newWorker()
		}
		for seq := int64(0); ctx.Err() == nil; seq++ {
			_ = sends[seq%int64(len(sends))](ctx, seq, time.Now())
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// untilWritable posts 32 distinct keys (spread over every partition) round
// robin to the given members until one pass succeeds whole, and returns
// when it did.
func (r *runner) untilWritable(ctx context.Context, specs []childSpec, live []int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for pass := 0; ; pass++ {
		ok := true
		var last error
		for k := 0; k < 32 && ok; k++ {
			s := newSigner(r.client, specs[live[k%len(live)]].ingestURL(), r.opts.Source, r.opts.Secret, r.opts.BodySize)
			s.prefix = fmt.Sprintf("probe-%d-%d-", pass, k)
			if err := s.newWorker()(ctx, int64(k), time.Now()); err != nil {
				ok, last = false, err
			}
		}
		if ok {
			return time.Now(), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("not writable after %v: %v", limit, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func clusterStatus(ctx context.Context, admin string) (api.ClusterStatus, error) {
	var st api.ClusterStatus
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+admin+api.Prefix+"/cluster", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+clusterBenchToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("bench: GET /api/v1/cluster: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
