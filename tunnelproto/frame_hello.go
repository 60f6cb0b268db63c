package tunnelproto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// helloFrame opens the handshake on the control stream (agent → server).
//
//	version u16 | client nonce [32] | id length u8 | agent id
type helloFrame struct {
	Version uint16
	Nonce   [nonceLen]byte
	AgentID []byte // aliases the parsed buffer
}

func (f *helloFrame) frameType() FrameType { return FrameHello }

func (f *helloFrame) payloadLen() int { return 2 + nonceLen + 1 + len(f.AgentID) }

func (f *helloFrame) Length() int { return headerLen + f.payloadLen() }

func (f *helloFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameHello, f.payloadLen())
	b = binary.BigEndian.AppendUint16(b, f.Version)
	b = append(b, f.Nonce[:]...)
	b = append(b, byte(len(f.AgentID)))
	return append(b, f.AgentID...)
}

func parseHello(b []byte) (helloFrame, int, error) {
	var f helloFrame
	v, rest, err := readUint16(b)
	if err != nil {
		return f, 0, err
	}
	f.Version = v
	if len(rest) < nonceLen+1 {
		return f, 0, io.EOF
	}
	copy(f.Nonce[:], rest)
	n := int(rest[nonceLen])
	rest = rest[nonceLen+1:]
	if n == 0 || n > MaxAgentIDLen {
		return f, 0, fmt.Errorf("%w: agent id of %d bytes, want 1 to %d", ErrMalformed, n, MaxAgentIDLen)
	}
	if len(rest) < n {
		return f, 0, io.EOF
	}
	f.AgentID = rest[:n:n]
	return f, len(b) - len(rest) + n, nil
}
