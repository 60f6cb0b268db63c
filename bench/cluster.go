package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/webhookops/webhookops/admin/api"
)

// ScenarioCluster is not in Scenarios (`bench all`): it runs four servers.
const ScenarioCluster = "cluster"

const clusterBenchToken = "whops_bench-cluster-token-0123456789"

// cluster measures ingest spread over three cluster members on this
// machine against one single node under the same load, in the same run,
// then kill -9s the member that leads the most partitions and measures how
// long until every partition takes writes again through the survivors.
// Cluster members do not deliver yet, so there is no e2e figure, and the
// single node gets no destinations either, for a like-for-like ingest.
func (r *runner) cluster(ctx context.Context) (ScenarioResult, error) {
	res := ScenarioResult{Name: ScenarioCluster, Mode: r.mode(), Unit: "req/s"}
	if r.opts.Target != "" {
		return res, fmt.Errorf("%w: the cluster scenario starts its own nodes (no --target)", ErrNotAvailable)
	}
	bin, err := serverBin(ctx, r.opts.ServerBin)
	if err != nil {
		return res, err
	}
	cfg := serverConfig(r.opts.Source, r.opts.Secret, nil, nil)

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
	one := r.measure(ctx, "cluster: one node", func(bool) load {
		return r.phase(newSigner(r.client, spec.ingestURL(), r.opts.Source, r.opts.Secret, r.opts.BodySize).newWorker)
	})
	_ = single.stop(10 * time.Second)

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
			"--initial-members", members, "--admin-token", clusterBenchToken}
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
	var next atomic.Int64
	three := r.measure(ctx, "cluster: three members", func(bool) load {
		signers := make([]*signer, 3)
		for i := range signers {
			signers[i] = newSigner(r.client, specs[i].ingestURL(), r.opts.Source, r.opts.Secret, r.opts.BodySize)
			signers[i].prefix = signers[0].prefix + strconv.Itoa(i) // distinct keys per member
		}
		return r.phase(func() sendFunc { return signers[next.Add(1)%3].newWorker() })
	})
	fill(&res, three, "req/s")
	fillBaseline(&res, one.throughput(), one.rec.latency())

	// Failover: kill the member leading the most partitions.
	st, err := clusterStatus(ctx, specs[0].adminAddr)
	if err != nil {
		return res, err
	}
	victim, most := 0, -1
	for _, n := range st.Nodes {
		if n.Leads > most && n.ID >= 1 && n.ID <= 3 {
			victim, most = int(n.ID-1), n.Leads
		}
	}
	nodes[victim].kill()
	killed := time.Now()
	var live []int
	for i := range specs {
		if i != victim {
			live = append(live, i)
		}
	}
	took, err := r.untilWritable(ctx, specs, live, 30*time.Second)
	if err != nil {
		return res, fmt.Errorf("bench: after killing node %d: %w", victim+1, err)
	}
	res.setExtra("failover_writable_s", took.Sub(killed).Seconds())
	res.setExtra("failover_partitions_led_by_killed", float64(most))
	res.Mode += ", ratio = three members / one node"
	return res, ctx.Err()
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
