package tunnelproto

import "testing"

// TestWireNumbers pins every number that goes on the wire. Changing one
// breaks interoperability with deployed agents: add a new one instead.
func TestWireNumbers(t *testing.T) {
	pins := []struct {
		name      string
		got, want int
	}{
		{"Version", int(Version), 1},
		{"sizeOfVersion", sizeOfVersion, 1},
		{"sizeOfType", sizeOfType, 1},
		{"sizeOfFlags", sizeOfFlags, 2},
		{"sizeOfLength", sizeOfLength, 4},
		{"headerLen", headerLen, 8},
		{"MaxPayloadLen", MaxPayloadLen, 4096},
		{"MaxAgentIDLen", MaxAgentIDLen, 128},
		{"MaxTargetLen", MaxTargetLen, 512},
		{"MaxReasonLen", MaxReasonLen, 512},
		{"nonceLen", nonceLen, 32},
		{"proofLen", proofLen, 32},
		{"exporterLen", exporterLen, 32},

		{"FrameHello", int(FrameHello), 0x01},
		{"FrameChallenge", int(FrameChallenge), 0x02},
		{"FrameAuth", int(FrameAuth), 0x03},
		{"FrameOK", int(FrameOK), 0x04},
		{"FrameError", int(FrameError), 0x05},
		{"FramePing", int(FramePing), 0x06},
		{"FramePong", int(FramePong), 0x07},
		{"FrameGoAway", int(FrameGoAway), 0x08},
		{"FrameOpen", int(FrameOpen), 0x09},
		{"FrameOpenOK", int(FrameOpenOK), 0x0a},
		{"FrameMembers", int(FrameMembers), 0x0b},

		{"KindHTTP", int(KindHTTP), 1},
		{"KindTCP", int(KindTCP), 2},

		{"CodeNone", int(CodeNone), 0},
		{"CodeProtocol", int(CodeProtocol), 1},
		{"CodeUnsupportedVersion", int(CodeUnsupportedVersion), 2},
		{"CodeAuthFailed", int(CodeAuthFailed), 3},
		{"CodeReplay", int(CodeReplay), 4},
		{"CodeRateLimited", int(CodeRateLimited), 5},
		{"CodeHandshakeTimeout", int(CodeHandshakeTimeout), 6},
		{"CodeNotAllowed", int(CodeNotAllowed), 7},
		{"CodeDialFailed", int(CodeDialFailed), 8},
		{"CodeShutdown", int(CodeShutdown), 9},
		{"CodeReplaced", int(CodeReplaced), 10},
		{"CodeRevoked", int(CodeRevoked), 11},
		{"CodeHeartbeatTimeout", int(CodeHeartbeatTimeout), 12},
		{"CodeInternal", int(CodeInternal), 13},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %#x, pinned at %#x", p.name, p.got, p.want)
		}
	}
	strs := []struct{ got, want string }{
		{ALPN, "webhookops-tunnel/1"},
		{authContext, "webhookops-tunnel/1 auth"},
		{exporterLabel, "EXPORTER-webhookops-tunnel-auth"},
	}
	for _, s := range strs {
		if s.got != s.want {
			t.Errorf("got %q, pinned at %q", s.got, s.want)
		}
	}
}

// TestHeaderBytes pins the byte layout of a header.
func TestHeaderBytes(t *testing.T) {
	got := appendHeader(nil, FrameOpen, 0x01020304)
	want := []byte{1, 0x09, 0, 0, 1, 2, 3, 4}
	if string(got) != string(want) {
		t.Fatalf("header = % x, want % x", got, want)
	}
}
