package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"
)

// adminCall sends one admin API request to nd with the test token and
// decodes a 2xx answer into out.
func adminCall(nd *clusterNode, method, path string, in, out any) (int, error) {
	var body *bytes.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	} else {
		body = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, "http://"+nd.admin+path, body)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, raw.String())
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(raw.Bytes(), out)
	}
	return resp.StatusCode, nil
}

// adminPost is adminCall for a POST that a member may refuse for a moment
// with 503 (its metadata shard catching up or electing after a restart):
// tried again for up to 15 s.
func adminPost(nd *clusterNode, path string, in, out any) error {
	for deadline := time.Now().Add(15 * time.Second); ; {
		code, err := adminCall(nd, "POST", path, in, out)
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A replay asked of a member that does not deliver the destination is
// carried out by the member that does (its partition's leader), delivered
// once more to the sink with the event's webhook-id and audited there; a
// replay over every destination of an event, asked of any member, is
// carried out by each destination's member under one id, and reads the
// same, summed, from every member.
func TestClusterReplayForwarded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers as child processes")
	}
	bin := buildBinary(t)
	sink := &checkSink{got: map[string][]arrival{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	secret := []byte("cluster-replay-secret")
	// One destination in each of the four partitions, so their leaders
	// are (almost always) more than one member.
	slugs := []string{"a", "b", "c", "d"}
	var routes, dests []string
	for _, d := range slugs {
		routes = append(routes, "      - destination: "+d+"\n")
		dests = append(dests, fmt.Sprintf("  - slug: %s\n    url: %s/%s\n    allow_private_network: true\n", d, srv.URL, d))
	}
	os.WriteFile(cfg, []byte(fmt.Sprintf("sources:\n  - slug: s\n    provider: generic\n    secrets: [%q]\n    routes:\n%sdestinations:\n%s",
		secret, strings.Join(routes, ""), strings.Join(dests, ""))), 0o600)

	// No --member-admin-urls: each member records its admin URL (derived
	// from its loopback --admin-addr) in the metadata shard, and the
	// others forward to it from there.
	nodes := newClusterNodes(t, bin, 3, false)
	startAll(t, bin, cfg, nodes)

	// Settled: every partition led, its takeover applied. The first
	// member up tends to win every election: while one member leads every
	// partition, kill -9 and restart it, so the others share them.
	owner := map[string]int{} // destination -> member delivering it
	var owners []uint64
	for try := 0; ; try++ {
		var st api.ClusterStatus
		for deadline := time.Now().Add(60 * time.Second); ; {
			var err error
			// Settled, and the configuration (proposed to the metadata
			// shard by the members at start) applied: every destination
			// listed.
			if st, err = clusterStatus(nodes[0]); err == nil && settled(st) {
				listed := 0
				for _, p := range st.Partitions {
					listed += len(p.Destinations)
				}
				if listed == len(slugs) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cluster never settled: %+v %v\n%s", st, err, nodes[0].c.log)
			}
			time.Sleep(100 * time.Millisecond)
		}
		owners = owners[:0]
		for _, p := range st.Partitions {
			for _, d := range p.Destinations {
				owner[d] = int(p.Leader)
				owners = append(owners, p.Leader)
			}
		}
		slices.Sort(owners)
		owners = slices.Compact(owners)
		if len(owners) > 1 {
			break
		}
		if try == 5 {
			t.Fatalf("member %d leads every partition after %d restarts of it", owners[0], try)
		}
		// Down until the others have taken every partition over (a
		// member's view of a leader that just died is stale for an
		// election timeout), then back.
		nd := nodes[owners[0]-1]
		other := nodes[owners[0]%3]
		nd.c.kill9()
		for deadline := time.Now().Add(30 * time.Second); ; {
			st, err := clusterStatus(other)
			movedAll := err == nil && len(st.Partitions) > 0
			for _, p := range st.Partitions {
				movedAll = movedAll && p.Leader != 0 && p.Leader != uint64(nd.id) && p.Owner == p.Leader && p.OwnerTerm == p.Term
			}
			if movedAll {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d's partitions were not taken over: %+v %v", nd.id, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		nd.start(t, bin, cfg, memberList(nodes))
	}
	// Every member lists every member's admin URL, as recorded.
	for _, nd := range nodes {
		for deadline := time.Now().Add(20 * time.Second); ; {
			st, err := clusterStatus(nd)
			got := map[uint64]string{}
			for _, n := range st.Nodes {
				got[n.ID] = n.AdminURL
			}
			all := err == nil
			for _, o := range nodes {
				all = all && got[uint64(o.id)] == "http://"+o.admin
			}
			if all {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d's status lists admin URLs %v (%v); want every member's http://<its --admin-addr>\n%s", nd.id, got, err, nd.c.log)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	byID := func(id int) *clusterNode { return nodes[id-1] }
	var notA *clusterNode // a member that does not deliver a
	for _, nd := range nodes {
		if nd.id != owner["a"] {
			notA = nd
			break
		}
	}
	t.Logf("destinations by member: %v; replays go to member %d", owner, notA.id)

	client := &http.Client{Timeout: 10 * time.Second}
	var ev ingestAnswer
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, a, err := postSigned(client, notA.ingest, secret, "k1")
		if err == nil && code/100 == 2 {
			ev = a
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitArrivals := func(dest string, n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); len(sink.arrivals(dest)) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%s received %d deliveries, want %d", dest, len(sink.arrivals(dest)), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, d := range slugs {
		waitArrivals(d, 1)
	}

	waitReplay := func(nd *clusterNode, id string) model.Replay {
		t.Helper()
		var rec model.Replay
		for deadline := time.Now().Add(20 * time.Second); ; {
			if _, err := adminCall(nd, "GET", "/api/v1/replays/"+id, nil, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Status.Finished() {
				return rec
			}
			if time.Now().After(deadline) {
				t.Fatalf("replay %s on member %d: %+v", id, nd.id, rec)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// One destination, asked of a member that does not deliver it.
	var one model.Replay
	if err := adminPost(notA, "/api/v1/events/"+ev.EventID+"/replay", map[string]string{"destination": "a", "reason": "forwarded"}, &one); err != nil {
		t.Fatalf("replay on a member that does not deliver a: %v", err)
	}
	waitArrivals("a", 2)
	rec := waitReplay(notA, one.ID)
	if rec.Status != model.ReplayCompleted || rec.Total != 1 || rec.Succeeded != 1 || !slices.Equal(rec.Members, []uint64{uint64(owner["a"])}) {
		t.Fatalf("replay read on member %d = %+v; want completed, 1 of 1, carried out by member %d", notA.id, rec, owner["a"])
	}
	// Audited where it ran (the delivery's entry is written after its
	// outcome is committed, so it may trail the replay's completion).
	for deadline := time.Now().Add(10 * time.Second); ; {
		var audit api.Page[model.AuditEntry]
		if _, err := adminCall(byID(owner["a"]), "GET", "/api/v1/audit?replay_id="+one.ID, nil, &audit); err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range audit.Items {
			actions = append(actions, e.Action)
		}
		if slices.Contains(actions, "replay.requested") && slices.Contains(actions, "replay.completed") && slices.Contains(actions, "delivery.delivered") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit of replay %s on member %d: %v", one.ID, owner["a"], actions)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Every destination of the event, asked of the same member: one id,
	// a part on each destination's member.
	var all model.Replay
	if err := adminPost(notA, "/api/v1/events/"+ev.EventID+"/replay", map[string]string{"reason": "everywhere"}, &all); err != nil {
		t.Fatalf("replay over every destination: %v", err)
	}
	waitArrivals("a", 3)
	for _, d := range slugs[1:] {
		waitArrivals(d, 2)
	}
	for _, nd := range nodes {
		rec := waitReplay(nd, all.ID)
		if rec.Status != model.ReplayCompleted || rec.Total != 4 || rec.Succeeded != 4 || !slices.Equal(rec.Destinations, slugs) || !slices.Equal(rec.Members, owners) {
			t.Fatalf("replay %s read on member %d = %+v; want completed, 4 of 4 over %v, parts on members %v", all.ID, nd.id, rec, slugs, owners)
		}
	}

	// Every member lists both, newest first, the parts summed.
	for _, nd := range nodes {
		var page api.Page[model.Replay]
		if _, err := adminCall(nd, "GET", "/api/v1/replays?limit=10", nil, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 2 || page.Items[0].ID != all.ID || page.Items[0].Total != 4 || page.Items[1].ID != one.ID || page.Items[1].Total != 1 {
			t.Fatalf("replays listed on member %d: %+v; want %s (4 deliveries) then %s (1)", nd.id, page.Items, all.ID, one.ID)
		}
	}

	// Each delivered once per replay, all with the event's webhook-id.
	time.Sleep(300 * time.Millisecond)
	for dest, want := range map[string]int{"a": 3, "b": 2, "c": 2, "d": 2} {
		got := sink.arrivals(dest)
		if len(got) != want {
			t.Errorf("%s: %d deliveries, want %d", dest, len(got), want)
		}
		for _, a := range got {
			if a.eventID != ev.EventID {
				t.Errorf("%s: delivered %s, want webhook-id %s", dest, a.eventID, ev.EventID)
			}
		}
	}
	for _, nd := range nodes {
		nd.c.stop(t)
	}
}
