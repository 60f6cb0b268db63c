package tunnelproto

import "encoding/binary"

// errorFrame refuses a handshake (control stream) or an OPEN (data stream).
//
//	code u16 | reason length u16 | reason (UTF-8, at most MaxReasonLen)
type errorFrame struct {
	Code   Code
	Reason []byte // aliases the parsed buffer
}

func (f *errorFrame) frameType() FrameType { return FrameError }

func (f *errorFrame) Length() int { return headerLen + 4 + len(f.Reason) }

func (f *errorFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameError, 4+len(f.Reason))
	b = binary.BigEndian.AppendUint16(b, uint16(f.Code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.Reason)))
	return append(b, f.Reason...)
}

func parseError(b []byte) (errorFrame, int, error) {
	var f errorFrame
	code, rest, err := readUint16(b)
	if err != nil {
		return f, 0, err
	}
	f.Code = Code(code)
	f.Reason, rest, err = readBytes16(rest, MaxReasonLen, "reason")
	if err != nil {
		return f, 0, err
	}
	return f, len(b) - len(rest), nil
}
