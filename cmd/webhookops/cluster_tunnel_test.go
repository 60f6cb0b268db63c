package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/actors/cluster"
	"github.com/webhookops/webhookops/tunnelproto"
)

// TestTunnelMembersOf: what a member tells its agents is every member's
// tunnel by node id, without those agents could not dial or pin.
func TestTunnelMembersOf(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	dir := cluster.TunnelDirectory{
		3: {Node: 3, Addr: "n3.example:9700", Fingerprint: pin},
		1: {Node: 1, Addr: "n1.example:9700", Fingerprint: pin},
		2: {Node: 2, Addr: "n2.example", Fingerprint: pin},      // no port
		4: {Node: 4, Addr: "n4.example:9700", Fingerprint: "x"}, // no pin
	}
	want := []tunnelproto.Member{{Addr: "n1.example:9700", Fingerprint: pin}, {Addr: "n3.example:9700", Fingerprint: pin}}
	if got := tunnelMembersOf(dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
