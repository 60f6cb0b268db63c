package tunnelproto

import "io"

// challengeFrame answers HELLO with the server's nonce (server → agent).
//
//	server nonce [32]
type challengeFrame struct {
	Nonce [nonceLen]byte
}

func (f *challengeFrame) frameType() FrameType { return FrameChallenge }

func (f *challengeFrame) Length() int { return headerLen + nonceLen }

func (f *challengeFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameChallenge, nonceLen)
	return append(b, f.Nonce[:]...)
}

func parseChallenge(b []byte) (challengeFrame, int, error) {
	var f challengeFrame
	if len(b) < nonceLen {
		return f, 0, io.EOF
	}
	copy(f.Nonce[:], b)
	return f, nonceLen, nil
}
