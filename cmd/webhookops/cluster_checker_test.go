package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal"
)

// arrival is one delivery the checker's sink received.
type arrival struct {
	key     string // the sender's X-Webhook-Id
	eventID string // webhook-id
	at      time.Time
}

// checkSink records what each destination (its path) received, in order.
type checkSink struct {
	mu  sync.Mutex // guards got
	got map[string][]arrival
}

func (s *checkSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := arrival{key: r.Header.Get("X-Webhook-Id"), eventID: r.Header.Get("Webhook-Id"), at: time.Now()}
	s.mu.Lock()
	s.got[strings.TrimPrefix(r.URL.Path, "/")] = append(s.got[strings.TrimPrefix(r.URL.Path, "/")], a)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *checkSink) arrivals(dest string) []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got[dest])
}

// ackRecord is what a sender knows of one key it got 2xx for.
type ackRecord struct {
	eventID     string
	sent, acked time.Time // first try sent; 2xx received
}

// checkerFault is one fault the checker injected.
type checkerFault struct {
	what string
	node int
	at   time.Time
}

// clusterStatus asks a member's admin API for the cluster's state.
func clusterStatus(nd *clusterNode) (api.ClusterStatus, error) {
	req, _ := http.NewRequest("GET", "http://"+nd.admin+"/api/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return api.ClusterStatus{}, err
	}
	defer resp.Body.Close()
	var st api.ClusterStatus
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("GET /api/v1/cluster: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leaderOf returns the member leading partition part as the live members
// see it, or nil.
func leaderOf(live []*clusterNode, part uint16) *clusterNode {
	for _, nd := range live {
		st, err := clusterStatus(nd)
		if err != nil {
			continue
		}
		for _, p := range st.Partitions {
			if p.Partition == part && p.Leader != 0 {
				for _, m := range live {
					if uint64(m.id) == p.Leader {
						return m
					}
				}
			}
		}
	}
	return nil
}

// TestClusterChecker is the proof of the cluster's guarantees over real
// processes: three `webhookops serve` members on 127.0.0.1, senders that
// each send keys one after another (the next only after the last one's
// 2xx, retrying a failed try on the next member) spread over every member,
// an ordered and a parallel destination on a loopback sink, and faults
// during the load: kill -9 and restart of the member leading the ordered
// destination's partition, SIGSTOP of a leader for longer than the
// election timeout then SIGCONT, kill -9 and restart of a random member.
// At the end it checks that every acknowledged event reached each
// destination, under one event id per key (the one its sender was told),
// that the ordered destination kept order (A before B whenever A's 2xx
// came before B was first sent), and that redeliveries (same webhook-id)
// are within the rule: at most the ordered pipeline (--ordered-pipeline,
// the events sent with their outcome not yet committed) per fault for the
// ordered destination, max_in_flight for the parallel one.
//
// -cluster-long runs more fault cycles for longer.
func TestClusterChecker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers as child processes")
	}
	bin := buildBinary(t)
	sink := &checkSink{got: map[string][]arrival{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	const parallelInFlight = 8
	// The members pipeline an ordered destination's outcomes; a failover
	// re-sends at most this many of its events. Below the default (256),
	// so the bound says something over a short run, and above
	// destsm.MaxChained, so the line runs ahead as it does by default.
	const orderedPipeline = 32
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	secret := []byte("cluster-checker-secret")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`sources:
  - slug: s
    provider: generic
    secrets: [%q]
    routes:
      - destination: ord
      - destination: par
destinations:
  - slug: ord
    url: %[2]s/ord
    ordering: ordered
    backoff_base: 50ms
    backoff_max: 200ms
    max_attempts: 100
    allow_private_network: true
  - slug: par
    url: %[2]s/par
    ordering: parallel
    max_in_flight: %[3]d
    backoff_base: 50ms
    backoff_max: 200ms
    max_attempts: 100
    allow_private_network: true
`, secret, srv.URL, parallelInFlight)), 0o600)

	began := time.Now()
	nodes := startClusterNodes(t, bin, cfg, 3, false, "--ordered-pipeline", strconv.Itoa(orderedPipeline))
	members := memberList(nodes)
	const partitions = 4 // startClusterNodes' --cluster-partitions
	ordPart := wal.Partition(partitions, "ord")
	t.Logf("%v: three members ready; the ordered destination is in partition %d", time.Since(began).Round(time.Millisecond), ordPart)

	var (
		mu    sync.Mutex
		acked = map[string]ackRecord{}
		down  = map[int]bool{} // members killed or stopped now: senders skip them
	)
	client := &http.Client{Timeout: 3 * time.Second}
	post := func(nd *clusterNode, key string) (int, ingestAnswer, error) {
		return postSigned(client, nd.ingest, secret, key)
	}
	// Every partition takes writes before the load starts.
	for i, deadline := 0, time.Now().Add(30*time.Second); ; i++ {
		ok := 0
		for j := range 8 {
			if code, _, err := post(nodes[j%3], fmt.Sprintf("warm-%d-%d", i, j)); err == nil && code/100 == 2 {
				ok++
			}
		}
		if ok == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never took writes\n%s", nodes[0].c.log)
		}
		time.Sleep(100 * time.Millisecond)
	}

	senders, cycles, phase := 6, 1, 2*time.Second
	if *clusterLong {
		senders, cycles, phase = 8, 5, 4*time.Second
	}
	stop := make(chan struct{})
	var sending sync.WaitGroup
	for i := range senders {
		sending.Add(1)
		go func() {
			defer sending.Done()
			try := i
			for j := 0; ; j++ {
				key := fmt.Sprintf("%d-%d", i, j)
				sent := time.Now()
				for {
					select {
					case <-stop:
						return
					default:
					}
					try++
					nd := nodes[try%3]
					mu.Lock()
					skip := down[nd.id]
					mu.Unlock()
					if skip {
						continue
					}
					code, a, err := post(nd, key)
					if err == nil && code/100 == 2 && a.EventID != "" {
						mu.Lock()
						acked[key] = ackRecord{eventID: a.EventID, sent: sent, acked: time.Now()}
						mu.Unlock()
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}

	var faults []checkerFault
	live := func() []*clusterNode {
		mu.Lock()
		defer mu.Unlock()
		var out []*clusterNode
		for _, nd := range nodes {
			if !down[nd.id] {
				out = append(out, nd)
			}
		}
		return out
	}
	setDown := func(nd *clusterNode, d bool) {
		mu.Lock()
		down[nd.id] = d
		mu.Unlock()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 23))
	// leader: the member leading the ordered destination's partition, or
	// any when none is known.
	leader := func() *clusterNode {
		if nd := leaderOf(live(), ordPart); nd != nil {
			return nd
		}
		return nodes[rng.IntN(3)]
	}
	killAndRestart := func(victim *clusterNode, what string) {
		setDown(victim, true)
		victim.c.kill9()
		faults = append(faults, checkerFault{what, victim.id, time.Now()})
		time.Sleep(phase)
		victim.start(t, bin, cfg, members)
		setDown(victim, false)
		time.Sleep(phase)
	}
	time.Sleep(phase)
	for cycle := range cycles {
		killAndRestart(leader(), "kill -9 leader")

		// SIGSTOP a leader past the election timeout, then SIGCONT.
		victim := leader()
		setDown(victim, true)
		victim.c.cmd.Process.Signal(syscall.SIGSTOP)
		faults = append(faults, checkerFault{"SIGSTOP leader", victim.id, time.Now()})
		time.Sleep(2500 * time.Millisecond)
		victim.c.cmd.Process.Signal(syscall.SIGCONT)
		setDown(victim, false)
		time.Sleep(phase)

		killAndRestart(nodes[rng.IntN(3)], "kill -9")
		t.Logf("%v: cycle %d done", time.Since(began).Round(time.Millisecond), cycle+1)
	}
	close(stop)
	sending.Wait()
	mu.Lock()
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	mu.Unlock()
	t.Logf("%v: load stopped, %d keys acknowledged; waiting for deliveries", time.Since(began).Round(time.Millisecond), len(keys))

	// Every acknowledged key reaches both destinations. A backlog left by
	// the faults takes a while to drain: wait as long as deliveries make
	// progress.
	lastMissing := -1
	for deadline := time.Now().Add(30 * time.Second); ; {
		missing := map[string]int{}
		for _, dest := range []string{"ord", "par"} {
			got := map[string]bool{}
			for _, a := range sink.arrivals(dest) {
				got[a.key] = true
			}
			for _, k := range keys {
				if !got[k] {
					missing[dest]++
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if n := missing["ord"] + missing["par"]; n != lastMissing {
			lastMissing, deadline = n, time.Now().Add(30*time.Second)
		}
		if time.Now().After(deadline) {
			for _, nd := range nodes {
				t.Logf("member %d log:\n%s", nd.id, nd.c.log)
			}
			t.Fatalf("acknowledged events not delivered, no progress for 30 s: %v of %d", missing, len(keys))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%v: every acknowledged event delivered", time.Since(began).Round(time.Millisecond))
	// Let redeliveries in flight land before counting them.
	time.Sleep(time.Second)

	r := checkDeliveries(t, sink, acked, len(faults), orderedPipeline, parallelInFlight)
	var gaps []string
	ordArrivals := sink.arrivals("ord")
	for _, f := range faults {
		// Deliveries resume: the first arrival at the ordered destination
		// after the fault (there is load all along).
		for _, a := range ordArrivals {
			if a.at.After(f.at) {
				gaps = append(gaps, fmt.Sprintf("%s of %d: %v", f.what, f.node, a.at.Sub(f.at).Round(time.Millisecond)))
				break
			}
		}
	}
	t.Logf("acknowledged %d keys from %d senders over %d faults; ordered: %d deliveries, %d redelivered; parallel: %d deliveries, %d redelivered; first ordered delivery after each fault: %s",
		len(keys), senders, len(faults), r.ord, r.ordDups, r.par, r.parDups, strings.Join(gaps, ", "))
	for _, nd := range nodes {
		nd.c.stop(t)
	}
}

type checkResult struct {
	ord, ordDups, par, parDups int
}

// checkDeliveries checks the sink against what the senders were told.
func checkDeliveries(t *testing.T, sink *checkSink, acked map[string]ackRecord, faults, orderedPipeline, parallelInFlight int) checkResult {
	t.Helper()
	var r checkResult
	eventOf := map[string]string{} // key -> webhook-id, over both destinations
	for _, dest := range []string{"ord", "par"} {
		arr := sink.arrivals(dest)
		pos := map[string]int{} // first arrival of each key
		dups := 0
		for i, a := range arr {
			if id, ok := eventOf[a.key]; ok && id != a.eventID {
				t.Errorf("%s: key %s delivered as %s and as %s: two events for one key", dest, a.key, id, a.eventID)
			}
			eventOf[a.key] = a.eventID
			if rec, ok := acked[a.key]; ok && rec.eventID != a.eventID {
				t.Errorf("%s: key %s delivered as %s; its sender was told %s", dest, a.key, a.eventID, rec.eventID)
			}
			if _, seen := pos[a.key]; seen {
				dups++
				continue
			}
			pos[a.key] = i
		}
		if dest == "ord" {
			r.ord, r.ordDups = len(arr), dups
			checkOrder(t, acked, pos)
			if dups > faults*orderedPipeline {
				t.Errorf("ordered destination: %d redeliveries over %d faults; at most the pipeline (%d) per fault", dups, faults, orderedPipeline)
			}
		} else {
			r.par, r.parDups = len(arr), dups
			if dups > faults*parallelInFlight {
				t.Errorf("parallel destination: %d redeliveries over %d faults; at most max_in_flight (%d) per fault", dups, faults, parallelInFlight)
			}
		}
	}
	return r
}

// checkOrder: for acknowledged keys A and B, if A's 2xx came before B was
// first sent, A's first delivery comes before B's.
func checkOrder(t *testing.T, acked map[string]ackRecord, pos map[string]int) {
	t.Helper()
	type kv struct {
		key string
		rec ackRecord
	}
	byAck := make([]kv, 0, len(acked))
	for k, r := range acked {
		byAck = append(byAck, kv{k, r})
	}
	sort.Slice(byAck, func(i, j int) bool { return byAck[i].rec.acked.Before(byAck[j].rec.acked) })
	// latest[i]: the key among byAck[:i+1] delivered last.
	latest := make([]string, len(byAck))
	for i, e := range byAck {
		latest[i] = e.key
		if i > 0 && pos[latest[i-1]] > pos[e.key] {
			latest[i] = latest[i-1]
		}
	}
	for _, b := range byAck {
		// Keys acknowledged before b was first sent.
		n := sort.Search(len(byAck), func(i int) bool { return !byAck[i].rec.acked.Before(b.rec.sent) })
		if n == 0 {
			continue
		}
		if a := latest[n-1]; pos[a] > pos[b.key] {
			t.Errorf("ordered destination: %s (acknowledged %v) delivered after %s (first sent %v)",
				a, acked[a].acked.Format(time.StampMicro), b.key, b.rec.sent.Format(time.StampMicro))
			return
		}
	}
}
