package tunnelproto

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMembersToAgents: a session hears the cluster's tunnels right after
// OK and again when they change; an agent without OnMembers skips the
// frame and serves on.
func TestMembersToAgents(t *testing.T) {
	overTransports(t, func(t *testing.T, tr Transport) {
		target := echoServer(t)
		auth := newMemAuth()
		auth.set("agent-1", "s3cret", target)
		auth.set("agent-2", "s3cret", target)
		s := startServerOver(t, tr, auth, nil)
		pin := "sha256:" + strings.Repeat("ab", 32)
		first := []Member{{Addr: s.Addr().String(), Fingerprint: s.fp}, {Addr: "n2.example:9700", Fingerprint: pin}}
		if err := s.SetMembers(first); err != nil {
			t.Fatal(err)
		}
		heard := make(chan []Member, 4)
		cfg := s.clientConfig("agent-1", "s3cret")
		cfg.OnMembers = func(ms []Member) { heard <- ms }
		startAgent(t, cfg, dialHandler([]string{target}))
		wait := func(want []Member) {
			t.Helper()
			select {
			case got := <-heard:
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("heard %+v, want %+v", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("never heard %+v", want)
			}
		}
		wait(first)
		// The same list again sends nothing; a change reaches the session.
		if err := s.SetMembers(first); err != nil {
			t.Fatal(err)
		}
		next := append(first, Member{Addr: "[::1]:9701", Fingerprint: pin})
		if err := s.SetMembers(next); err != nil {
			t.Fatal(err)
		}
		wait(next)

		// An agent that does not listen for MEMBERS skips it and serves.
		startAgent(t, s.clientConfig("agent-2", "s3cret"), dialHandler([]string{target}))
		waitOnline(t, s, "agent-2")
		c, err := s.Dial(context.Background(), "agent-2", KindTCP, target)
		if err != nil {
			t.Fatalf("agent-2 after MEMBERS: %v", err)
		}
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("agent-2 echo: %q %v", buf, err)
		}
		c.Close()
	})
}

func TestSetMembersRefusesBadInput(t *testing.T) {
	// Not served: SetMembers validates before anything is sent.
	cert, _ := testCerts(t)
	s, err := NewServer(ServerConfig{Addr: "127.0.0.1:0", TLSCert: cert, Auth: newMemAuth(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pin := "sha256:" + strings.Repeat("ab", 32)
	many := make([]Member, MaxMembers+1)
	for i := range many {
		many[i] = Member{Addr: "n.example:9700", Fingerprint: pin}
	}
	for name, ms := range map[string][]Member{
		"no port":      {{Addr: "n1.example", Fingerprint: pin}},
		"bad pin":      {{Addr: "n1.example:9700", Fingerprint: "md5:00"}},
		"long address": {{Addr: strings.Repeat("a", MaxMemberAddrLen) + ":9700", Fingerprint: pin}},
		"too many":     many,
	} {
		if err := s.SetMembers(ms); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}
