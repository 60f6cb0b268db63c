package tunnelproto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// header is the fixed frame header.
type header struct {
	Version uint8
	Type    FrameType
	Flags   uint16 // reserved: sent as 0, ignored on receipt
	Length  uint32 // payload length in bytes
}

// parseHeader decodes a header from b. It returns io.EOF if b is shorter than
// a header. It checks the version and the length limit, so the caller may
// size a read by Length without further checks.
func parseHeader(b []byte) (header, int, error) {
	if len(b) < headerLen {
		return header{}, 0, io.EOF
	}
	h := header{
		Version: b[0],
		Type:    FrameType(b[sizeOfVersion]),
		Flags:   binary.BigEndian.Uint16(b[sizeOfVersion+sizeOfType:]),
		Length:  binary.BigEndian.Uint32(b[sizeOfVersion+sizeOfType+sizeOfFlags:]),
	}
	if h.Version != Version {
		return h, headerLen, fmt.Errorf("%w: %d", ErrUnsupportedVersion, h.Version)
	}
	if h.Length > MaxPayloadLen {
		return h, headerLen, fmt.Errorf("%w: %s payload of %d bytes, limit %d", ErrFrameTooLarge, h.Type, h.Length, MaxPayloadLen)
	}
	return h, headerLen, nil
}

// appendHeader appends a header for a payload of n bytes.
func appendHeader(b []byte, t FrameType, n int) []byte {
	b = append(b, Version, byte(t), 0, 0)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// frame is implemented by every frame type.
type frame interface {
	frameType() FrameType
	// Append appends the whole frame, header included.
	Append(b []byte) []byte
	// Length is the encoded length of the whole frame, header included.
	Length() int
}

// frameBuf is scratch space large enough for any frame.
type frameBuf [maxFrameLen]byte

// readFrame reads one frame of a known type from r into buf and returns its
// type and payload (aliasing buf). Frames of unknown types are read and
// skipped. It reads exactly the frame's bytes, never past it, so raw bytes
// may follow on the same stream. A clean end of stream before a header
// returns io.EOF; one inside a frame returns io.ErrUnexpectedEOF.
func readFrame(r io.Reader, buf *frameBuf) (FrameType, []byte, error) {
	for {
		if _, err := io.ReadFull(r, buf[:headerLen]); err != nil {
			return 0, nil, err
		}
		h, _, err := parseHeader(buf[:headerLen])
		if err != nil {
			return h.Type, nil, err
		}
		payload := buf[headerLen : headerLen+int(h.Length)]
		if _, err := io.ReadFull(r, payload); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h.Type, nil, err
		}
		if knownFrameType(h.Type) {
			return h.Type, payload, nil
		}
	}
}

func knownFrameType(t FrameType) bool { return t >= FrameHello && t <= FrameMembers }

// parseFrame parses one whole frame (header and payload) from b. It returns
// io.EOF if b holds only part of a frame, and a nil frame for an unknown type
// (n still covers it, so the caller can skip it).
func parseFrame(b []byte) (frame, int, error) {
	h, n, err := parseHeader(b)
	if err != nil {
		return nil, n, err
	}
	end := headerLen + int(h.Length)
	if len(b) < end {
		return nil, 0, io.EOF
	}
	f, err := parsePayload(h.Type, b[headerLen:end])
	if err == io.EOF {
		// The header promised more than the payload holds.
		err = fmt.Errorf("%w: %s payload of %d bytes is short", ErrMalformed, h.Type, h.Length)
	}
	return f, end, err
}

// parsePayload parses a payload of a known type. It allocates (the result is
// an interface); the hot paths call the typed parsers instead.
func parsePayload(t FrameType, p []byte) (frame, error) {
	var (
		f   frame
		err error
	)
	switch t {
	case FrameHello:
		var x helloFrame
		x, _, err = parseHello(p)
		f = &x
	case FrameChallenge:
		var x challengeFrame
		x, _, err = parseChallenge(p)
		f = &x
	case FrameAuth:
		var x authFrame
		x, _, err = parseAuth(p)
		f = &x
	case FrameOK:
		var x okFrame
		x, _, err = parseOK(p)
		f = &x
	case FrameError:
		var x errorFrame
		x, _, err = parseError(p)
		f = &x
	case FramePing:
		var x pingFrame
		x, _, err = parsePing(p)
		f = &x
	case FramePong:
		var x pongFrame
		x, _, err = parsePong(p)
		f = &x
	case FrameGoAway:
		var x goAwayFrame
		x, _, err = parseGoAway(p)
		f = &x
	case FrameOpen:
		var x openFrame
		x, _, err = parseOpen(p)
		f = &x
	case FrameOpenOK:
		var x openOKFrame
		x, _, err = parseOpenOK(p)
		f = &x
	case FrameMembers:
		var x membersFrame
		x, _, err = parseMembers(p)
		f = &x
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// unexpected reports a known frame that arrived out of turn.
func unexpected(got, want FrameType) error {
	return fmt.Errorf("%w: got %s, want %s", ErrUnexpectedFrame, got, want)
}

// Small big-endian readers that report io.EOF when b is short.

func readUint16(b []byte) (uint16, []byte, error) {
	if len(b) < 2 {
		return 0, nil, io.EOF
	}
	return binary.BigEndian.Uint16(b), b[2:], nil
}

func readUint32(b []byte) (uint32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, io.EOF
	}
	return binary.BigEndian.Uint32(b), b[4:], nil
}

func readUint64(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, io.EOF
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// readBytes16 reads a uint16 length and that many bytes, refusing lengths
// above max before looking at the bytes.
func readBytes16(b []byte, max int, what string) ([]byte, []byte, error) {
	n, rest, err := readUint16(b)
	if err != nil {
		return nil, nil, err
	}
	if int(n) > max {
		return nil, nil, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrMalformed, what, n, max)
	}
	if len(rest) < int(n) {
		return nil, nil, io.EOF
	}
	return rest[:n:n], rest[n:], nil
}
