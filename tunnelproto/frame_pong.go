package tunnelproto

import "encoding/binary"

// pongFrame answers a PING (server → agent).
//
//	sequence u64 (copied from the PING)
type pongFrame struct {
	Seq uint64
}

func (f *pongFrame) frameType() FrameType { return FramePong }

func (f *pongFrame) Length() int { return headerLen + 8 }

func (f *pongFrame) Append(b []byte) []byte {
	b = appendHeader(b, FramePong, 8)
	return binary.BigEndian.AppendUint64(b, f.Seq)
}

func parsePong(b []byte) (pongFrame, int, error) {
	v, _, err := readUint64(b)
	if err != nil {
		return pongFrame{}, 0, err
	}
	return pongFrame{Seq: v}, 8, nil
}
