package tunnelproto

import "io"

// authFrame carries the agent's proof (agent → server).
//
//	proof [32]  HMAC-SHA256, see proof in auth.go and spec.md
type authFrame struct {
	Proof [proofLen]byte
}

func (f *authFrame) frameType() FrameType { return FrameAuth }

func (f *authFrame) Length() int { return headerLen + proofLen }

func (f *authFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameAuth, proofLen)
	return append(b, f.Proof[:]...)
}

func parseAuth(b []byte) (authFrame, int, error) {
	var f authFrame
	if len(b) < proofLen {
		return f, 0, io.EOF
	}
	copy(f.Proof[:], b)
	return f, proofLen, nil
}
