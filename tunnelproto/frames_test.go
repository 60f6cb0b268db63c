package tunnelproto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// sampleFrames is one real encoding of every frame type; the fuzz corpus and
// the truncation tests start from it.
func sampleFrames() []frame {
	var nonce [nonceLen]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	var proof [proofLen]byte
	for i := range proof {
		proof[i] = byte(0xff - i)
	}
	return []frame{
		&helloFrame{Version: uint16(Version), Nonce: nonce, AgentID: []byte("agent-1")},
		&challengeFrame{Nonce: nonce},
		&authFrame{Proof: proof},
		&okFrame{HeartbeatMillis: 15000},
		&errorFrame{Code: CodeDialFailed, Reason: []byte("dial tcp 127.0.0.1:1: connection refused")},
		&errorFrame{Code: CodeNotAllowed},
		&pingFrame{Seq: 42},
		&pongFrame{Seq: 42},
		&goAwayFrame{Code: CodeReplaced, Reason: []byte("replaced")},
		&openFrame{RequestID: 7, Kind: KindHTTP, Target: []byte("localhost:3000")},
		&openOKFrame{RequestID: 7},
		&membersFrame{Members: []memberEntry{{Fingerprint: nonce, Addr: []byte("n1.example:9700")}, {Fingerprint: proof, Addr: []byte("[::1]:9700")}}},
		&membersFrame{Members: []memberEntry{}},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range sampleFrames() {
		t.Run(f.frameType().String(), func(t *testing.T) {
			b := f.Append(nil)
			if len(b) != f.Length() {
				t.Fatalf("Append wrote %d bytes, Length says %d", len(b), f.Length())
			}
			got, n, err := parseFrame(b)
			if err != nil {
				t.Fatalf("parseFrame: %v", err)
			}
			if n != len(b) {
				t.Fatalf("parseFrame consumed %d of %d bytes", n, len(b))
			}
			if !reflect.DeepEqual(normalize(got), normalize(f)) {
				t.Fatalf("round trip: got %#v, want %#v", got, f)
			}
			// The same through the stream reader.
			var buf frameBuf
			typ, p, err := readFrame(bytes.NewReader(b), &buf)
			if err != nil || typ != f.frameType() || !bytes.Equal(p, b[headerLen:]) {
				t.Fatalf("readFrame = %v, % x, %v", typ, p, err)
			}
		})
	}
}

// normalize turns empty byte slices into nil so DeepEqual compares content.
func normalize(f frame) frame {
	switch x := f.(type) {
	case *errorFrame:
		if len(x.Reason) == 0 {
			y := *x
			y.Reason = nil
			return &y
		}
	case *goAwayFrame:
		if len(x.Reason) == 0 {
			y := *x
			y.Reason = nil
			return &y
		}
	}
	return f
}

// TestTruncatedPayload feeds every proper prefix of every payload to its
// parser and expects io.EOF.
func TestTruncatedPayload(t *testing.T) {
	for _, f := range sampleFrames() {
		t.Run(f.frameType().String(), func(t *testing.T) {
			b := f.Append(nil)[headerLen:]
			for i := 0; i < len(b); i++ {
				if _, _, err := parseByType(f.frameType(), b[:i]); err != io.EOF {
					t.Fatalf("prefix of %d/%d bytes: err = %v, want io.EOF", i, len(b), err)
				}
			}
			if _, n, err := parseByType(f.frameType(), b); err != nil || n != len(b) {
				t.Fatalf("whole payload: n=%d err=%v", n, err)
			}
		})
	}
}

// TestTruncatedFrame does the same for whole frames, header included.
func TestTruncatedFrame(t *testing.T) {
	for _, f := range sampleFrames() {
		t.Run(f.frameType().String(), func(t *testing.T) {
			b := f.Append(nil)
			for i := 0; i < len(b); i++ {
				if _, _, err := parseFrame(b[:i]); err != io.EOF {
					t.Fatalf("prefix of %d/%d bytes: err = %v, want io.EOF", i, len(b), err)
				}
				_, _, err := readFrame(bytes.NewReader(b[:i]), new(frameBuf))
				if i == 0 && err != io.EOF {
					t.Fatalf("empty stream: err = %v, want io.EOF", err)
				}
				if i > 0 && err != io.ErrUnexpectedEOF {
					t.Fatalf("stream cut after %d/%d bytes: err = %v, want io.ErrUnexpectedEOF", i, len(b), err)
				}
			}
		})
	}
}

func parseByType(t FrameType, b []byte) (any, int, error) {
	switch t {
	case FrameHello:
		return parseHello(b)
	case FrameChallenge:
		return parseChallenge(b)
	case FrameAuth:
		return parseAuth(b)
	case FrameOK:
		return parseOK(b)
	case FrameError:
		return parseError(b)
	case FramePing:
		return parsePing(b)
	case FramePong:
		return parsePong(b)
	case FrameGoAway:
		return parseGoAway(b)
	case FrameOpen:
		return parseOpen(b)
	case FrameOpenOK:
		return parseOpenOK(b)
	case FrameMembers:
		return parseMembers(b)
	}
	panic("unknown frame type")
}

func TestLimitsBeforeAllocation(t *testing.T) {
	// A header announcing 4 GiB must be refused from the header alone.
	b := appendHeader(nil, FrameOpen, 0)
	b[4], b[5], b[6], b[7] = 0xff, 0xff, 0xff, 0xff
	r := &countingReader{r: bytes.NewReader(append(b, make([]byte, 100)...))}
	_, _, err := readFrame(r, new(frameBuf))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if r.n != headerLen {
		t.Fatalf("read %d bytes, want only the %d-byte header", r.n, headerLen)
	}

	cases := []struct {
		name string
		f    frame
	}{
		{"agent id too long", &helloFrame{AgentID: []byte(strings.Repeat("a", MaxAgentIDLen+1))}},
		{"empty agent id", &helloFrame{}},
		{"target too long", &openFrame{Kind: KindTCP, Target: []byte(strings.Repeat("a", MaxTargetLen+1))}},
		{"empty target", &openFrame{Kind: KindTCP}},
		{"reason too long", &errorFrame{Reason: []byte(strings.Repeat("a", MaxReasonLen+1))}},
		{"goaway reason too long", &goAwayFrame{Reason: []byte(strings.Repeat("a", MaxReasonLen+1))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseFrame(c.f.Append(nil))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestVersionChecked(t *testing.T) {
	b := (&pingFrame{Seq: 1}).Append(nil)
	b[0] = 2
	if _, _, err := readFrame(bytes.NewReader(b), new(frameBuf)); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("err = %v, want ErrUnsupportedVersion", err)
	}
}

func TestUnknownFrameSkipped(t *testing.T) {
	var b []byte
	b = appendHeader(b, 0x7f, 5)
	b = append(b, "hello"...)
	b = appendHeader(b, 0xee, 0)
	b = (&pingFrame{Seq: 9}).Append(b)
	b = append(b, "raw bytes after the frame"...)
	r := bytes.NewReader(b)
	typ, p, err := readFrame(r, new(frameBuf))
	if err != nil || typ != FramePing {
		t.Fatalf("readFrame = %v, %v; want PING", typ, err)
	}
	if f, _, _ := parsePing(p); f.Seq != 9 {
		t.Fatalf("seq = %d", f.Seq)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "raw bytes after the frame" {
		t.Fatalf("readFrame read past its frame: rest = %q", rest)
	}
	f, n, err := parseFrame(appendHeader(nil, 0x7f, 0))
	if f != nil || n != headerLen || err != nil {
		t.Fatalf("parseFrame(unknown) = %v, %d, %v", f, n, err)
	}
}

// TestHotPathAllocs: what every forwarded request does on the wire (OPEN,
// OPEN_OK, ERROR) and the heartbeat allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	buf := make([]byte, 0, maxFrameLen)
	var fb frameBuf
	r := bytes.NewReader(nil)
	target := []byte("localhost:3000")
	allocs := testing.AllocsPerRun(1000, func() {
		buf = (&openFrame{RequestID: 1, Kind: KindHTTP, Target: target}).Append(buf[:0])
		buf = (&openOKFrame{RequestID: 1}).Append(buf)
		buf = (&pingFrame{Seq: 2}).Append(buf)
		buf = (&errorFrame{Code: CodeDialFailed, Reason: target}).Append(buf)
		r.Reset(buf)
		for {
			typ, p, err := readFrame(r, &fb)
			if err != nil {
				break
			}
			switch typ {
			case FrameOpen:
				if f, _, err := parseOpen(p); err != nil || f.RequestID != 1 {
					panic("bad OPEN")
				}
			case FrameOpenOK:
				if _, _, err := parseOpenOK(p); err != nil {
					panic(err)
				}
			case FramePing:
				if _, _, err := parsePing(p); err != nil {
					panic(err)
				}
			case FrameError:
				if _, _, err := parseError(p); err != nil {
					panic(err)
				}
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("hot path allocates %.1f times per run, want 0", allocs)
	}
}

func BenchmarkFrameCodec(b *testing.B) {
	buf := make([]byte, 0, maxFrameLen)
	var fb frameBuf
	r := bytes.NewReader(nil)
	target := []byte("localhost:3000")
	b.ReportAllocs()
	for b.Loop() {
		buf = (&openFrame{RequestID: 1, Kind: KindHTTP, Target: target}).Append(buf[:0])
		buf = (&openOKFrame{RequestID: 1}).Append(buf)
		r.Reset(buf)
		_, p, _ := readFrame(r, &fb)
		_, _, _ = parseOpen(p)
		_, p, _ = readFrame(r, &fb)
		_, _, _ = parseOpenOK(p)
	}
}
