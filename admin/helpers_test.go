package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookops/webhookops/actors/leaktest"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/ingress"
	"github.com/webhookops/webhookops/ingress/verify"
	"github.com/webhookops/webhookops/wal"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

const testToken = "whops_test-bootstrap-token-0123456789"

// env is a real node (Pebble in a temp dir), its admin API and its ingest
// handler, each on a loopback HTTP server.
type env struct {
	t      *testing.T
	dir    string
	db     *wal.DB
	node   *actors.Node
	adm    *Server
	api    *httptest.Server
	in     *httptest.Server
	token  string
	client *http.Client
	shard  *localShard // envOpts.replicated
}

type envOpts struct {
	bootstrap     string
	metricsPublic bool
	dir           string
	noTunnel      bool // the node runs no tunnel (no --tunnel-addr)
	minFree       int64
	membership    Membership // the node is a cluster member's
	// tunnelMembers, with membership, is the cluster's tunnel directory.
	tunnelMembers func(context.Context) ([]TunnelMember, error)
	// partitions and peers, with membership, replace the partitions'
	// leaders and reach the other members.
	partitions func() ([]api.ClusterPartition, error)
	peers      *Peers
	// cluster, with membership, replaces the status GET /api/v1/cluster
	// starts from.
	cluster func(context.Context) (api.ClusterStatus, error)
	// replicated: configuration changes go through a stand-in for a
	// cluster's metadata shard (applied at once, here alone);
	// onInitialToken is the server's OnInitialToken.
	replicated     bool
	onInitialToken func(string)
}

// localShard applies proposed changes as a metadata shard of one member
// would, in the order proposed.
type localShard struct {
	mu       sync.Mutex
	node     *actors.Node
	db       *wal.DB
	index    uint64
	catchUps atomic.Int64
}

func (l *localShard) ProposeChange(_ context.Context, c actors.Change) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.index++
	mb := l.db.NewMetaBatch()
	committed := false
	err := l.node.ApplyCommitted(c, mb.Batch, func() error { committed = true; return mb.CommitApplied(l.index) })
	if !committed {
		mb.Discard()
	}
	return err
}

func (l *localShard) CatchUp(context.Context) error { l.catchUps.Add(1); return nil }

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	db, err := wal.Open(o.dir, wal.Config{Partitions: 8, CacheSize: 8 << 20, SecretKey: bytes.Repeat([]byte{7}, 32), MinFreeBytes: o.minFree})
	if err != nil {
		t.Fatal(err)
	}
	node, err := actors.Start(actors.Config{
		DB:           db,
		Deliverer:    delivery.NewClient(delivery.Options{}),
		Shards:       4,
		DrainTimeout: 2 * time.Second,
		// Refusals reach the audit log quickly in tests.
		RejectionInterval: 20 * time.Millisecond,
	})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	var shard *localShard
	if o.replicated {
		shard = &localShard{node: node, db: db}
		node.UseConfigReplicator(shard)
	}
	tunnel := &TunnelInfo{Addr: "gw.example:7443", Fingerprint: "sha256:abcd"}
	if o.noTunnel {
		tunnel = nil
	}
	cfg := Config{Node: node, BootstrapToken: o.bootstrap, MetricsPublic: o.metricsPublic, MetricsCacheFor: time.Nanosecond,
		Tunnel: tunnel, OnInitialToken: o.onInitialToken}
	if o.membership != nil {
		cfg.Membership = o.membership
		cfg.TunnelMembers = o.tunnelMembers
		cfg.Cluster = func(context.Context) (api.ClusterStatus, error) { return api.ClusterStatus{NodeID: 1}, nil }
		cfg.ClusterPartitions = func() ([]api.ClusterPartition, error) {
			return []api.ClusterPartition{{Partition: 3, Leader: 2, Term: 7, AppliedIndex: 42, Delivering: true}}, nil
		}
		cfg.ClusterMetadata = func() (api.ClusterMetadata, error) {
			return api.ClusterMetadata{Replicas: []uint64{1, 2, 3}, Leader: 3, Term: 5, AppliedIndex: 17}, nil
		}
		if o.partitions != nil {
			cfg.ClusterPartitions = o.partitions
		}
		cfg.Peers = o.peers
		if o.cluster != nil {
			cfg.Cluster = o.cluster
		}
	}
	adm, err := New(cfg)
	if err != nil {
		node.Close()
		db.Close()
		t.Fatal(err)
	}
	e := &env{t: t, dir: o.dir, db: db, node: node, adm: adm, token: o.bootstrap, client: &http.Client{Timeout: 30 * time.Second}, shard: shard}
	if e.token == "" {
		e.token = adm.InitialToken()
	}
	e.api = httptest.NewServer(adm)
	e.in = httptest.NewServer(ingress.NewHandler(ingress.Config{Node: node}))
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	e.api.Close()
	e.in.Close()
	e.adm.Close()
	e.node.Close()
	e.db.Close()
	e.client.CloseIdleConnections()
}

// call does one API request with the env's token and decodes the answer
// into out (if not nil). It returns the status and the raw body.
func (e *env) call(method, path string, body, out any) (int, []byte) {
	e.t.Helper()
	return e.callAs(e.token, method, path, body, out)
}

func (e *env) callAs(token, method, path string, body, out any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.api.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// must is call that fails the test unless the status is want.
func (e *env) must(want int, method, path string, body, out any) []byte {
	e.t.Helper()
	code, raw := e.call(method, path, body, out)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	return raw
}

// ingest posts a generic webhook signed with secret through the ingest
// handler and returns the event id.
func (e *env) ingest(source, secret, key, body string) string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.in.URL+"/in/"+source, strings.NewReader(body))
	req.Header.Set("X-Webhookops-Signature", verify.SignGeneric([]byte(secret), []byte(body)))
	req.Header.Set("X-Event-Id", key)
	req.Header.Set("X-Event-Type", "order.created")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("ingest %s: %d %s", key, resp.StatusCode, raw)
	}
	var r struct {
		EventID string `json:"event_id"`
	}
	json.Unmarshal(raw, &r)
	return r.EventID
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sink is a loopback receiver that can be told to fail.
type sink struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	ids     []string // webhook-id of each accepted request
	hits    map[string]int
	total   atomic.Int64
}

func newSink(t *testing.T) *sink {
	s := &sink{hits: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.total.Add(1)
		if s.failing.Load() {
			http.Error(w, "sink is down", http.StatusServiceUnavailable)
			return
		}
		id := r.Header.Get("Webhook-Id")
		s.mu.Lock()
		s.ids = append(s.ids, id)
		s.hits[id]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) accepted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func (s *sink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[id]
}

// setup creates destination "app" pointing at the sink and source "shop"
// routing to it, and returns the source's secret.
func (e *env) setup(sk *sink, dest map[string]any) string {
	e.t.Helper()
	d := map[string]any{"slug": "app", "url": sk.srv.URL + "/hook", "allow_private_network": true}
	for k, v := range dest {
		d[k] = v
	}
	e.must(http.StatusCreated, "POST", "/api/v1/destinations", d, nil)
	var src SourceOut
	e.must(http.StatusCreated, "POST", "/api/v1/sources", map[string]any{
		"slug": "shop", "provider": "generic", "routes": []map[string]any{{"destination": "app"}},
	}, &src)
	if len(src.Secrets) != 1 || strings.Contains(src.Secrets[0], "*") {
		e.t.Fatalf("creation must show the secret in clear once: %+v", src)
	}
	return src.Secrets[0]
}

func (e *env) event(id string) EventOut {
	e.t.Helper()
	var ev EventOut
	e.must(http.StatusOK, "GET", "/api/v1/events/"+id, nil, &ev)
	return ev
}

func (e *env) waitReplay(id string, timeout time.Duration) Replay {
	e.t.Helper()
	var r Replay
	eventually(e.t, timeout, fmt.Sprintf("replay %s to complete", id), func() bool {
		r = Replay{}
		e.must(http.StatusOK, "GET", "/api/v1/replays/"+id, nil, &r)
		if r.Status == ReplayFailed {
			e.t.Fatalf("replay failed: %+v", r)
		}
		return r.Status == ReplayCompleted
	})
	return r
}
