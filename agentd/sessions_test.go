package agentd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webhookops/webhookops/tunnelproto"
)

func TestEndpoints(t *testing.T) {
	a, b := "sha256:"+strings.Repeat("aa", 32), "sha256:"+strings.Repeat("bb", 32)
	cases := []struct {
		name        string
		addrs, pins []string
		want        []Endpoint
		err         string
	}{
		{"one", []string{"gw:9700"}, []string{a}, []Endpoint{{"gw:9700", a}}, ""},
		{"one pin for all", []string{"n1:9700", "n2:9700"}, []string{a}, []Endpoint{{"n1:9700", a}, {"n2:9700", a}}, ""},
		{"a pin each", []string{"n1:9700", "n2:9700"}, []string{a, b}, []Endpoint{{"n1:9700", a}, {"n2:9700", b}}, ""},
		{"no address", nil, []string{a}, nil, "no tunnel address"},
		{"no pin", []string{"gw:9700"}, nil, nil, "1 tunnel addresses and 0 server fingerprints"},
		{"pins do not pair", []string{"n1:9700", "n2:9700", "n3:9700"}, []string{a, b}, nil, "3 tunnel addresses and 2 server fingerprints"},
		{"twice", []string{"n1:9700", "n1:9700"}, []string{a}, nil, "listed twice"},
		{"not host:port", []string{"n1"}, []string{a}, nil, `"n1" is not host:port`},
		{"bad pin", []string{"n1:9700", "n2:9700"}, []string{a, "sha1:00"}, nil, "fingerprint of n2:9700"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Endpoints(c.addrs, c.pins)
			if c.err != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want ErrInvalidConfig with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// waitSessions waits until cond holds of the agent's sessions.
func waitSessions(t *testing.T, a *Agent, what string, cond func([]SessionState) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond(a.Sessions()) {
			return
		}
	}
	t.Fatalf("sessions never %s: %+v", what, a.Sessions())
}

// TestSessionToEveryTunnel: an agent joined to three servers (each its own
// certificate, so a pin each) keeps a session to every one and delivers
// through each. With one server down the other two go on delivering, the
// down one's session says why it is down, and once that server is back
// the agent reconnects to it on its own.
func TestSessionToEveryTunnel(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	defer app.Close()
	target := app.Listener.Addr().String()
	envs := []*env{newEnv(t, target), newEnv(t, target), newEnv(t, target)}
	var addrs, pins []string
	for _, e := range envs {
		addrs, pins = append(addrs, e.addr), append(pins, e.fp)
	}
	eps, err := Endpoints(addrs, pins)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := envs[0].config(target)
	cfg.Tunnels = eps
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := envs[0].runAgent(a)
	defer stop()
	for _, e := range envs {
		e.waitOnline()
	}
	for i, e := range envs {
		if body := e.post(app.URL+"/hooks", fmt.Sprint("evt_", i)); body != fmt.Sprint("got evt_", i) {
			t.Fatalf("through server %d: body %q", i, body)
		}
	}

	down := envs[1]
	down.stop()
	waitSessions(t, a, "noticed server 1 down", func(ss []SessionState) bool { return !ss[1].Connected && ss[1].Failures > 0 })
	for _, i := range []int{0, 2} {
		if body := envs[i].post(app.URL+"/hooks", "while 1 is down"); body != "got while 1 is down" {
			t.Fatalf("through server %d with server 1 down: body %q", i, body)
		}
	}
	st := a.Sessions()
	if !st[0].Connected || !st[2].Connected || st[1].LastError == "" || st[1].Tunnel != down.addr {
		t.Fatalf("sessions with server 1 down: %+v", st)
	}
	if !strings.Contains(logs.String(), "sessions_up=2/3") {
		t.Fatalf("the log does not say how many sessions are up:\n%s", logs)
	}

	down.start(down.addr)
	down.waitOnline()
	if body := down.post(app.URL+"/hooks", "back"); body != "got back" {
		t.Fatalf("through the restarted server: body %q", body)
	}
	st = a.Sessions()
	for i, s := range st {
		if !s.Connected || s.Transport == "" {
			t.Fatalf("session %d after the restart: %+v", i, s)
		}
	}
	if st[1].Sessions != 2 || st[0].Sessions != 1 || st[2].Sessions != 1 {
		t.Fatalf("only server 1's session should have come up twice: %+v", st)
	}
}

// TestWrongPinOnOneTunnel: a pin that does not match one server refuses
// that server only; the others serve.
func TestWrongPinOnOneTunnel(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer app.Close()
	target := app.Listener.Addr().String()
	good, bad := newEnv(t, target), newEnv(t, target)
	cfg := good.config(target)
	cfg.Tunnels = []Endpoint{{Addr: good.addr, Fingerprint: good.fp}, {Addr: bad.addr, Fingerprint: good.fp}}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := good.runAgent(a)
	defer stop()
	good.waitOnline()
	waitSessions(t, a, "refused by the unpinned server", func(ss []SessionState) bool {
		return ss[1].Failures > 0 && strings.Contains(ss[1].LastError, "pinned fingerprint")
	})
	if body := good.post(app.URL, ""); body != "ok" {
		t.Fatalf("body %q", body)
	}
	if ok, _ := bad.srv.Online("agent-1"); ok {
		t.Fatal("agent connected to a server whose certificate it did not pin")
	}
}

// TestFollowsTheClustersTunnels: an agent enrolled with one member's
// tunnel joins the others its server names (MEMBERS), each pinned with the
// pin the list gives, and stops a learned session once the list drops it.
// A list that does not name the configured tunnel is not followed.
func TestFollowsTheClustersTunnels(t *testing.T) {
	a1, b, c := newEnv(t), newEnv(t), newEnv(t)
	logs := &syncBuffer{}
	cfg := a1.config()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	ag, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := a1.runAgent(ag)
	defer stop()
	a1.waitOnline()

	members := func(es ...*env) []tunnelproto.Member {
		var ms []tunnelproto.Member
		for _, e := range es {
			ms = append(ms, tunnelproto.Member{Addr: e.addr, Fingerprint: e.fp})
		}
		return ms
	}
	if err := a1.srv.SetMembers(members(a1, b, c)); err != nil {
		t.Fatal(err)
	}
	b.waitOnline()
	c.waitOnline()
	waitSessions(t, ag, "joined the two learned tunnels", func(ss []SessionState) bool {
		return len(ss) == 3 && !ss[0].Learned && ss[1].Learned && ss[2].Learned && ss[1].Connected && ss[2].Connected
	})

	// c leaves the cluster: its session stops; b's stays.
	if err := a1.srv.SetMembers(members(a1, b)); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, ag, "stopped the session to the member that left", func(ss []SessionState) bool { return len(ss) == 2 })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if on, _ := c.srv.Online("agent-1"); !on {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent kept its session to a member that left")
		}
	}
	if on, _ := b.srv.Online("agent-1"); !on {
		t.Fatal("the session to b ended with c's")
	}

	// A list that does not name a1 as configured: not followed, said once.
	if err := b.srv.SetMembers(members(b, c)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "not following the cluster's members"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the mismatch was not logged:\n%s", logs)
		}
	}
	if ss := ag.Sessions(); len(ss) != 2 {
		t.Fatalf("a list not naming the configured tunnel changed the sessions: %+v", ss)
	}
	if on, _ := c.srv.Online("agent-1"); on {
		t.Fatal("joined c from a list that did not name the configured tunnel")
	}
}

// TestStaticKeepsToItsTunnels: with Static the agent joins no tunnel a
// member names.
func TestStaticKeepsToItsTunnels(t *testing.T) {
	a1, b := newEnv(t), newEnv(t)
	cfg := a1.config()
	cfg.Static = true
	ag, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := a1.runAgent(ag)
	defer stop()
	a1.waitOnline()
	ag.learn([]tunnelproto.Member{{Addr: a1.addr, Fingerprint: a1.fp}, {Addr: b.addr, Fingerprint: b.fp}})
	if ss := ag.Sessions(); len(ss) != 1 {
		t.Fatalf("a static agent joined what the cluster named: %+v", ss)
	}
}

// TestLearnedSessionKeepsToTheAllowList: a member the agent joined because
// the cluster named it (MEMBERS) gets no more than the configured tunnel:
// a target outside the agent's allow list is refused on that session too,
// whatever the member's own server allows.
func TestLearnedSessionKeepsToTheAllowList(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	forbidden := ln.Addr().String()
	a1, b := newEnv(t, forbidden), newEnv(t, forbidden)
	a1.run(a1.config("127.0.0.1:9"))
	a1.waitOnline()
	if err := a1.srv.SetMembers([]tunnelproto.Member{{Addr: a1.addr, Fingerprint: a1.fp}, {Addr: b.addr, Fingerprint: b.fp}}); err != nil {
		t.Fatal(err)
	}
	b.waitOnline()
	_, err = b.srv.Dial(context.Background(), "agent-1", tunnelproto.KindTCP, forbidden)
	if !errors.Is(err, tunnelproto.ErrTargetNotAllowed) {
		t.Fatalf("err = %v, want the agent's refusal on the learned session", err)
	}
}

// TestLearnIgnoresBadEntries: entries of a MEMBERS list that are no
// host:port a dial can use (a port out of range, control characters or
// spaces) or carry no valid pin are skipped, and a list that is all bad
// changes nothing.
func TestLearnIgnoresBadEntries(t *testing.T) {
	a1 := newEnv(t)
	ag, err := New(a1.config())
	if err != nil {
		t.Fatal(err)
	}
	a1.runAgent(ag)
	a1.waitOnline()
	bad := []tunnelproto.Member{
		{Addr: "no-port", Fingerprint: a1.fp},
		{Addr: ":9700", Fingerprint: a1.fp},
		{Addr: "host:", Fingerprint: a1.fp},
		{Addr: "host:9700", Fingerprint: "sha256:zz"},
		{Addr: "host:9700", Fingerprint: ""},
		{Addr: "", Fingerprint: ""},
		{Addr: "\x00\xff:\n", Fingerprint: a1.fp},
		{Addr: "host:0", Fingerprint: a1.fp},
		{Addr: "host:99999", Fingerprint: a1.fp},
		{Addr: "a b:9700", Fingerprint: a1.fp},
		{Addr: "host\r\n:9700", Fingerprint: a1.fp},
	}
	for _, list := range [][]tunnelproto.Member{nil, bad, append([]tunnelproto.Member{{Addr: a1.addr, Fingerprint: a1.fp}}, bad...)} {
		ag.learn(list)
		if ss := ag.Sessions(); len(ss) != 1 || ss[0].Learned {
			t.Fatalf("after a list of %d bad entries: %+v", len(list), ss)
		}
	}
}
