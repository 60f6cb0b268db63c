package tunnelproto

import (
	"fmt"
	"io"
)

// membersFrame tells an agent every tunnel of the gateway's cluster
// (server → agent, control stream), after OK and whenever the cluster's
// members change, so the agent keeps a session to members added after it
// was enrolled. An agent that does not know the frame skips it.
//
//	count u8 | count × (fingerprint [32] | address length u8 | address)
type membersFrame struct {
	Members []memberEntry
}

type memberEntry struct {
	Fingerprint [32]byte
	Addr        []byte // aliases the parsed buffer
}

func (f *membersFrame) frameType() FrameType { return FrameMembers }

func (f *membersFrame) payloadLen() int {
	n := 1
	for _, m := range f.Members {
		n += 32 + 1 + len(m.Addr)
	}
	return n
}

func (f *membersFrame) Length() int { return headerLen + f.payloadLen() }

func (f *membersFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameMembers, f.payloadLen())
	b = append(b, byte(len(f.Members)))
	for _, m := range f.Members {
		b = append(b, m.Fingerprint[:]...)
		b = append(b, byte(len(m.Addr)))
		b = append(b, m.Addr...)
	}
	return b
}

func parseMembers(b []byte) (membersFrame, int, error) {
	var f membersFrame
	if len(b) < 1 {
		return f, 0, io.EOF
	}
	count := int(b[0])
	if count > MaxMembers {
		return f, 0, fmt.Errorf("%w: %d members, at most %d", ErrMalformed, count, MaxMembers)
	}
	rest := b[1:]
	f.Members = make([]memberEntry, 0, count)
	for range count {
		if len(rest) < 33 {
			return f, 0, io.EOF
		}
		var m memberEntry
		copy(m.Fingerprint[:], rest)
		n := int(rest[32])
		rest = rest[33:]
		if n == 0 || n > MaxMemberAddrLen {
			return f, 0, fmt.Errorf("%w: member address of %d bytes, want 1 to %d", ErrMalformed, n, MaxMemberAddrLen)
		}
		if len(rest) < n {
			return f, 0, io.EOF
		}
		m.Addr = rest[:n:n]
		rest = rest[n:]
		f.Members = append(f.Members, m)
	}
	return f, len(b) - len(rest), nil
}
