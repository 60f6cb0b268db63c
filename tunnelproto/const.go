package tunnelproto

// Version is the tunnel protocol version. It is carried in every frame header
// and in HELLO; a peer that reads a header with another version refuses the
// frame (and the server answers HELLO with ERROR CodeUnsupportedVersion).
//
// Changelog:
//
//	1  (2026) first version: HELLO/CHALLENGE/AUTH/OK/ERROR handshake bound to
//	   the TLS exporter, PING/PONG heartbeats, GOAWAY, OPEN/OPEN_OK per stream.
//	   Added since, ignorable (no version change): MEMBERS, the cluster's
//	   tunnels, server → agent.
//
// Never reuse a frame type or error code; add new ones. A change that an old
// peer cannot ignore (a new required field, a new meaning) bumps Version.
const Version uint8 = 1

// ALPN is the TLS application protocol negotiated on every tunnel connection.
const ALPN = "webhookops-tunnel/1"

// Header layout, big-endian:
//
//	0        1        2                 4                                   8
//	+--------+--------+-----------------+-----------------------------------+
//	|version |  type  |      flags      |              length               |
//	+--------+--------+-----------------+-----------------------------------+
const (
	sizeOfVersion = 1
	sizeOfType    = 1
	sizeOfFlags   = 2
	sizeOfLength  = 4
	headerLen     = sizeOfVersion + sizeOfType + sizeOfFlags + sizeOfLength
)

// Limits, checked right after the header is read and before anything is
// allocated or read further.
const (
	// MaxPayloadLen bounds the payload of any frame, known or unknown.
	MaxPayloadLen = 4096
	// MaxAgentIDLen bounds the agent id in HELLO.
	MaxAgentIDLen = 128
	// MaxTargetLen bounds the host:port target in OPEN.
	MaxTargetLen = 512
	// MaxReasonLen bounds the human readable text in ERROR and GOAWAY.
	MaxReasonLen = 512
	// MaxMembers bounds the tunnels in MEMBERS, and MaxMemberAddrLen each
	// one's host:port (12 of the longest fit in MaxPayloadLen).
	MaxMembers       = 12
	MaxMemberAddrLen = 255

	nonceLen = 32 // HELLO client nonce, CHALLENGE server nonce
	proofLen = 32 // HMAC-SHA256 output in AUTH

	maxFrameLen = headerLen + MaxPayloadLen
)

// FrameType identifies a frame. Receivers skip frame types they do not know.
type FrameType uint8

// Frame types. Never renumber; add new ones.
const (
	FrameHello     FrameType = 0x01 // agent → server, control stream
	FrameChallenge FrameType = 0x02 // server → agent, control stream
	FrameAuth      FrameType = 0x03 // agent → server, control stream
	FrameOK        FrameType = 0x04 // server → agent, control stream
	FrameError     FrameType = 0x05 // either way, control or data stream
	FramePing      FrameType = 0x06 // agent → server, control stream
	FramePong      FrameType = 0x07 // server → agent, control stream
	FrameGoAway    FrameType = 0x08 // either way, control stream
	FrameOpen      FrameType = 0x09 // server → agent, first frame of a data stream
	FrameOpenOK    FrameType = 0x0a // agent → server, answer to OPEN
	FrameMembers   FrameType = 0x0b // server → agent, control stream
)

func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "HELLO"
	case FrameChallenge:
		return "CHALLENGE"
	case FrameAuth:
		return "AUTH"
	case FrameOK:
		return "OK"
	case FrameError:
		return "ERROR"
	case FramePing:
		return "PING"
	case FramePong:
		return "PONG"
	case FrameGoAway:
		return "GOAWAY"
	case FrameOpen:
		return "OPEN"
	case FrameOpenOK:
		return "OPEN_OK"
	case FrameMembers:
		return "MEMBERS"
	}
	return "UNKNOWN"
}

// Kind says what a data stream carries. Both kinds are raw byte streams; the
// kind tells the agent (and its logs) what the server intends to speak.
type Kind uint8

// Stream kinds. Never renumber.
const (
	KindHTTP Kind = 1
	KindTCP  Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindHTTP:
		return "http"
	case KindTCP:
		return "tcp"
	}
	return "unknown"
}

// ParseKind parses "http" or "tcp".
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "http":
		return KindHTTP, true
	case "tcp":
		return KindTCP, true
	}
	return 0, false
}

// Code is the reason code carried by ERROR and GOAWAY frames and, for
// connection-level refusals, by the QUIC application error code of
// CONNECTION_CLOSE (so a peer learns the reason even if the last frame is lost).
type Code uint16

// Reason codes. Never renumber; add new ones.
const (
	CodeNone               Code = 0  // graceful, no error
	CodeProtocol           Code = 1  // malformed or unexpected frame
	CodeUnsupportedVersion Code = 2  // HELLO or header version not spoken
	CodeAuthFailed         Code = 3  // unknown agent or wrong proof (deliberately not told apart)
	CodeReplay             Code = 4  // client nonce seen before
	CodeRateLimited        Code = 5  // too many recent authentication failures
	CodeHandshakeTimeout   Code = 6  // handshake not finished in time
	CodeNotAllowed         Code = 7  // target not in the agent's allowed targets
	CodeDialFailed         Code = 8  // the agent could not connect to the target
	CodeShutdown           Code = 9  // peer is shutting down or draining
	CodeReplaced           Code = 10 // a newer session of the same agent took over
	CodeRevoked            Code = 11 // the server cut the session (revocation, rotation)
	CodeHeartbeatTimeout   Code = 12 // no heartbeat within the timeout
	CodeInternal           Code = 13 // unexpected local failure
)

func (c Code) String() string {
	switch c {
	case CodeNone:
		return "none"
	case CodeProtocol:
		return "protocol error"
	case CodeUnsupportedVersion:
		return "unsupported version"
	case CodeAuthFailed:
		return "authentication failed"
	case CodeReplay:
		return "nonce replayed"
	case CodeRateLimited:
		return "rate limited"
	case CodeHandshakeTimeout:
		return "handshake timeout"
	case CodeNotAllowed:
		return "target not allowed"
	case CodeDialFailed:
		return "dial failed"
	case CodeShutdown:
		return "shutting down"
	case CodeReplaced:
		return "replaced by a newer session"
	case CodeRevoked:
		return "disconnected by the server"
	case CodeHeartbeatTimeout:
		return "heartbeat timeout"
	case CodeInternal:
		return "internal error"
	}
	return "unknown code"
}

// authContext is the fixed context string that starts every AUTH proof.
const authContext = "webhookops-tunnel/1 auth"

// exporterLabel is the TLS exporter label whose 32-byte output binds the
// AUTH proof to one TLS connection (RFC 8446 section 7.5).
const (
	exporterLabel = "EXPORTER-webhookops-tunnel-auth"
	exporterLen   = 32
)
