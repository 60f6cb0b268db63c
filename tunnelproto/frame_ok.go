package tunnelproto

import "encoding/binary"

// okFrame accepts the agent (server → agent) and tells it how often to send
// PING.
//
//	heartbeat interval u32 (milliseconds)
type okFrame struct {
	HeartbeatMillis uint32
}

func (f *okFrame) frameType() FrameType { return FrameOK }

func (f *okFrame) Length() int { return headerLen + 4 }

func (f *okFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameOK, 4)
	return binary.BigEndian.AppendUint32(b, f.HeartbeatMillis)
}

func parseOK(b []byte) (okFrame, int, error) {
	v, _, err := readUint32(b)
	if err != nil {
		return okFrame{}, 0, err
	}
	return okFrame{HeartbeatMillis: v}, 4, nil
}
