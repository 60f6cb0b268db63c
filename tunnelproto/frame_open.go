package tunnelproto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// openFrame is the first frame of every data stream (server → agent).
//
//	request id u64 | kind u8 | target length u16 | target (host:port)
type openFrame struct {
	RequestID uint64
	Kind      Kind
	Target    []byte // aliases the parsed buffer
}

func (f *openFrame) frameType() FrameType { return FrameOpen }

func (f *openFrame) payloadLen() int { return 8 + 1 + 2 + len(f.Target) }

func (f *openFrame) Length() int { return headerLen + f.payloadLen() }

func (f *openFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameOpen, f.payloadLen())
	b = binary.BigEndian.AppendUint64(b, f.RequestID)
	b = append(b, byte(f.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.Target)))
	return append(b, f.Target...)
}

func parseOpen(b []byte) (openFrame, int, error) {
	var f openFrame
	id, rest, err := readUint64(b)
	if err != nil {
		return f, 0, err
	}
	f.RequestID = id
	if len(rest) < 1 {
		return f, 0, io.EOF
	}
	f.Kind = Kind(rest[0])
	f.Target, rest, err = readBytes16(rest[1:], MaxTargetLen, "target")
	if err != nil {
		return f, 0, err
	}
	if len(f.Target) == 0 {
		return f, 0, fmt.Errorf("%w: empty target", ErrMalformed)
	}
	return f, len(b) - len(rest), nil
}
