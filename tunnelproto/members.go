package tunnelproto

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"time"
)

// Member is one tunnel of a gateway cluster: where agents dial it, and its
// certificate's pin ("sha256:<hex>").
type Member struct {
	Addr        string
	Fingerprint string
}

// membersFrameOf validates ms and encodes them as one MEMBERS frame.
func membersFrameOf(ms []Member) ([]byte, error) {
	if len(ms) > MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", ErrInvalidConfig, len(ms), MaxMembers)
	}
	f := membersFrame{Members: make([]memberEntry, 0, len(ms))}
	for _, m := range ms {
		if h, p, err := net.SplitHostPort(m.Addr); err != nil || h == "" || p == "" || len(m.Addr) > MaxMemberAddrLen {
			return nil, fmt.Errorf("%w: member address %q is not host:port of at most %d bytes", ErrInvalidConfig, m.Addr, MaxMemberAddrLen)
		}
		pin, err := ParseFingerprint(m.Fingerprint)
		if err != nil {
			return nil, err
		}
		f.Members = append(f.Members, memberEntry{Fingerprint: pin, Addr: []byte(m.Addr)})
	}
	return f.Append(nil), nil
}

// members decodes a MEMBERS frame's entries.
func (f *membersFrame) members() []Member {
	out := make([]Member, 0, len(f.Members))
	for _, m := range f.Members {
		out = append(out, Member{Addr: string(m.Addr), Fingerprint: "sha256:" + hex.EncodeToString(m.Fingerprint[:])})
	}
	return out
}

// SetMembers makes ms the cluster's tunnels that every agent is told of:
// sessions up now hear of a change at once, new ones right after OK. An
// agent that knows MEMBERS keeps a session to each (agentd does); one that
// does not skips the frame. Nil or empty tells agents of no members (a
// single node sends nothing).
func (s *Server) SetMembers(ms []Member) error {
	var b []byte
	if len(ms) > 0 {
		var err error
		if b, err = membersFrameOf(ms); err != nil {
			return fmt.Errorf("tunnelproto.SetMembers: %w", err)
		}
	}
	s.mu.Lock()
	if bytes.Equal(b, s.members) {
		s.mu.Unlock()
		return nil
	}
	s.members = b
	live := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		live = append(live, ss)
	}
	s.mu.Unlock()
	if b == nil {
		return nil
	}
	for _, ss := range live {
		ss.writeMembers(b)
	}
	return nil
}

// sendMembers tells a new session the cluster's tunnels, if there are any.
func (s *Server) sendMembers(ss *session) {
	s.mu.Lock()
	b := s.members
	s.mu.Unlock()
	if b != nil {
		ss.writeMembers(b)
	}
}

// writeMembers writes an encoded MEMBERS frame on the control stream; a
// failure is the session's end, which its reader notices.
func (ss *session) writeMembers(b []byte) {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	ss.ctrl.Write(b)
}
