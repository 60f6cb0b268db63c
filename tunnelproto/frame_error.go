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
	return appendCodeReason(b, FrameError, f.Code, f.Reason)
}

func parseError(b []byte) (errorFrame, int, error) {
	code, reason, n, err := parseCodeReason(b)
	return errorFrame{Code: code, Reason: reason}, n, err
}

// ERROR and GOAWAY share their payload layout.

func appendCodeReason(b []byte, t FrameType, code Code, reason []byte) []byte {
	b = appendHeader(b, t, 4+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	return append(b, reason...)
}

func parseCodeReason(b []byte) (Code, []byte, int, error) {
	code, rest, err := readUint16(b)
	if err != nil {
		return 0, nil, 0, err
	}
	reason, rest, err := readBytes16(rest, MaxReasonLen, "reason")
	if err != nil {
		return 0, nil, 0, err
	}
	return Code(code), reason, len(b) - len(rest), nil
}
