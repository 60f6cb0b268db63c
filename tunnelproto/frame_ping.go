package tunnelproto

import "encoding/binary"

// pingFrame is the agent's heartbeat (agent → server); the server answers
// with a PONG carrying the same sequence number.
//
//	sequence u64
type pingFrame struct {
	Seq uint64
}

func (f *pingFrame) frameType() FrameType { return FramePing }

func (f *pingFrame) Length() int { return headerLen + 8 }

func (f *pingFrame) Append(b []byte) []byte {
	b = appendHeader(b, FramePing, 8)
	return binary.BigEndian.AppendUint64(b, f.Seq)
}

func parsePing(b []byte) (pingFrame, int, error) {
	v, _, err := readUint64(b)
	if err != nil {
		return pingFrame{}, 0, err
	}
	return pingFrame{Seq: v}, 8, nil
}
