package tunnelproto

import "encoding/binary"

// openOKFrame accepts an OPEN (agent → server); raw bytes follow it.
//
//	request id u64 (copied from the OPEN)
type openOKFrame struct {
	RequestID uint64
}

func (f *openOKFrame) frameType() FrameType { return FrameOpenOK }

func (f *openOKFrame) Length() int { return headerLen + 8 }

func (f *openOKFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameOpenOK, 8)
	return binary.BigEndian.AppendUint64(b, f.RequestID)
}

func parseOpenOK(b []byte) (openOKFrame, int, error) {
	v, _, err := readUint64(b)
	if err != nil {
		return openOKFrame{}, 0, err
	}
	return openOKFrame{RequestID: v}, 8, nil
}
