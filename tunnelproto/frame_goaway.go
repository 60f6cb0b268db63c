package tunnelproto

import "encoding/binary"

// goAwayFrame ends a session (either way, control stream): the sender opens
// no new streams and will close the connection soon.
//
//	code u16 | reason length u16 | reason (UTF-8, at most MaxReasonLen)
type goAwayFrame struct {
	Code   Code
	Reason []byte // aliases the parsed buffer
}

func (f *goAwayFrame) frameType() FrameType { return FrameGoAway }

func (f *goAwayFrame) Length() int { return headerLen + 4 + len(f.Reason) }

func (f *goAwayFrame) Append(b []byte) []byte {
	b = appendHeader(b, FrameGoAway, 4+len(f.Reason))
	b = binary.BigEndian.AppendUint16(b, uint16(f.Code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.Reason)))
	return append(b, f.Reason...)
}

func parseGoAway(b []byte) (goAwayFrame, int, error) {
	var f goAwayFrame
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
