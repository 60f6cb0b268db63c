package cluster

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"
)

func TestTunnelDirectoryApply(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r1 := TunnelReport{Node: 1, Addr: "n1:9700", Fingerprint: "sha256:aa", At: t0, Run: 10, Seq: 1,
		Sessions: map[string]TunnelSession{"office": {Remote: "10.0.0.9:5000", Transport: "quic", Since: t0}}}
	r1b := TunnelReport{Node: 1, Addr: "n1:9700", Fingerprint: "sha256:aa", At: t0.Add(time.Second), Run: 10, Seq: 2, Listeners: map[string]string{":5432": ""}}
	// The member restarted with its clock set back: its new run's report
	// replaces the old run's all the same.
	r1new := TunnelReport{Node: 1, Addr: "n1:9700", Fingerprint: "sha256:aa", At: t0.Add(-time.Hour), Run: 20, Seq: 1}
	r2 := TunnelReport{Node: 2, Addr: "n2:9700", Fingerprint: "sha256:bb", At: t0, Run: 5, Seq: 1}
	cases := []struct {
		name    string
		reports []TunnelReport
		want    TunnelDirectory
	}{
		{"first report", []TunnelReport{r1}, TunnelDirectory{1: r1}},
		{"a report replaces the member's whole record", []TunnelReport{r1, r1b}, TunnelDirectory{1: r1b}},
		{"members are apart", []TunnelReport{r1, r2}, TunnelDirectory{1: r1, 2: r2}},
		{"an older report committed late changes nothing", []TunnelReport{r1b, r1}, TunnelDirectory{1: r1b}},
		{"a new run replaces the old, whatever the clock", []TunnelReport{r1b, r1new}, TunnelDirectory{1: r1new}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d TunnelDirectory
			for _, r := range c.reports {
				d = d.Apply(r)
			}
			if !reflect.DeepEqual(d, c.want) {
				t.Fatalf("got %+v\nwant %+v", d, c.want)
			}
		})
	}
	// Of keeps current members' reports only.
	d := TunnelDirectory{}.Apply(r1).Apply(r2)
	if got := d.Of(map[uint64]string{2: "n2:7101", 4: "n4:7101"}); !reflect.DeepEqual(got, TunnelDirectory{2: r2}) {
		t.Fatalf("Of(2, 4) = %+v", got)
	}
	// Apply never changes the directory it is given: a reader holding it
	// keeps a consistent copy.
	held := TunnelDirectory{}.Apply(r1)
	_ = held.Apply(r1b)
	if !reflect.DeepEqual(held, TunnelDirectory{1: r1}) {
		t.Fatalf("the held directory changed: %+v", held)
	}
}

// TestTunnelSMRefusesAndSnapshots: garbage and reports without a node,
// address or pin are refused as results (an error would be fatal to the
// replica); a snapshot restores the same directory.
func TestTunnelSMRefusesAndSnapshots(t *testing.T) {
	s := &tunnelSM{}
	good, _ := json.Marshal(TunnelReport{Node: 3, Addr: "n3:9700", Fingerprint: "sha256:cc", At: time.Unix(100, 0).UTC()})
	noNode, _ := json.Marshal(TunnelReport{Addr: "n3:9700", Fingerprint: "sha256:cc"})
	noPin, _ := json.Marshal(TunnelReport{Node: 3, Addr: "n3:9700"})
	for name, cmd := range map[string][]byte{"garbage": []byte("{nope"), "no node": noNode, "no pin": noPin, "good": good} {
		res, err := s.Update(sm.Entry{Cmd: cmd})
		if err != nil {
			t.Fatalf("%s: Update error %v", name, err)
		}
		if want := map[bool]uint64{true: 1, false: 0}[name == "good"]; res.Value != want {
			t.Fatalf("%s: result %d, want %d", name, res.Value, want)
		}
	}
	v, _ := s.Lookup(nil)
	if d := v.(TunnelDirectory); len(d) != 1 || d[3].Addr != "n3:9700" {
		t.Fatalf("directory %+v", d)
	}
	var buf bytes.Buffer
	if err := s.SaveSnapshot(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	restored := &tunnelSM{}
	if err := restored.RecoverFromSnapshot(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	v2, _ := restored.Lookup(nil)
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("restored %+v, want %+v", v2, v)
	}
	if err := restored.RecoverFromSnapshot(bytes.NewReader([]byte("[")), nil, nil); err == nil {
		t.Fatal("a broken snapshot was accepted")
	}
}

// fakeTunnel is a TunnelSource whose state the test sets.
type fakeTunnel struct {
	mu  sync.Mutex
	rep TunnelReport
}

func (f *fakeTunnel) TunnelState() TunnelReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rep
}

func (f *fakeTunnel) set(rep TunnelReport) {
	f.mu.Lock()
	f.rep = rep
	f.mu.Unlock()
}

// TestReportTunnel: a member reports its tunnel on start and again after
// each change, stamped with its node id, and reads the directory back.
func TestReportTunnel(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	addr := freePort(t)
	c, err := Start(Config{NodeID: 7, RaftAddr: addr, Members: map[uint64]string{7: addr}, Dir: t.TempDir(), DB: db,
		RTT: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := &fakeTunnel{rep: TunnelReport{Addr: "gw:9700", Fingerprint: "sha256:77"}}
	c.ReportTunnel(src, time.Minute)
	wait := func(what string, cond func(TunnelDirectory) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if d, err := c.Tunnels(); err == nil && cond(d) {
				return
			}
		}
		d, err := c.Tunnels()
		t.Fatalf("directory never %s: %+v, %v", what, d, err)
	}
	wait("held the first report", func(d TunnelDirectory) bool {
		r, ok := d[7]
		return ok && r.Addr == "gw:9700" && r.Node == 7 && !r.At.IsZero()
	})
	src.set(TunnelReport{Addr: "gw:9700", Fingerprint: "sha256:77", Sessions: map[string]TunnelSession{"office": {Remote: "127.0.0.1:1", Transport: "quic"}}})
	c.TunnelChanged()
	wait("held the session", func(d TunnelDirectory) bool { _, ok := d[7].Sessions["office"]; return ok })
	src.set(TunnelReport{Addr: "gw:9700", Fingerprint: "sha256:77"})
	c.TunnelChanged()
	wait("dropped the session", func(d TunnelDirectory) bool { r := d[7]; return r.Addr != "" && len(r.Sessions) == 0 })
}
