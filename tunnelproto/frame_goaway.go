package tunnelproto

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
	return appendCodeReason(b, FrameGoAway, f.Code, f.Reason)
}

func parseGoAway(b []byte) (goAwayFrame, int, error) {
	code, reason, n, err := parseCodeReason(b)
	return goAwayFrame{Code: code, Reason: reason}, n, err
}
