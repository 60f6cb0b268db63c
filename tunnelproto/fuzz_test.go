package tunnelproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// splitReader returns its data in pieces whose sizes come from the fuzz
// input, the way a network delivers a byte stream.
type splitReader struct {
	data  []byte
	sizes []byte
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = int(r.sizes[0]%17) + 1
		r.sizes = r.sizes[1:]
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func FuzzFrames(f *testing.F) {
	var all []byte
	for _, fr := range sampleFrames() {
		b := fr.Append(nil)
		f.Add(b, []byte{3, 1, 4, 1, 5})
		all = append(all, b...)
	}
	f.Add(all, []byte{0, 7, 2})
	f.Add(append(appendHeader(nil, 0x7f, 3), 1, 2, 3), []byte{})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		// Whole-buffer parsing and stream reading in split pieces must agree.
		var whole []frame
		for b := data; len(b) > 0; {
			fr, n, err := parseFrame(b)
			if err != nil {
				break
			}
			if fr != nil {
				whole = append(whole, fr)
			}
			b = b[n:]
		}
		r := &splitReader{data: data, sizes: sizes}
		var fb frameBuf
		i := 0
		for {
			typ, p, err := readFrame(r, &fb)
			if err != nil {
				if len(p) != 0 {
					t.Fatalf("payload returned with error %v", err)
				}
				break
			}
			fr, err := parsePayload(typ, p)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, ErrMalformed) {
					break
				}
				t.Fatalf("unexpected error kind: %v", err)
			}
			if i >= len(whole) {
				t.Fatalf("stream reader found frame %d (%s), whole-buffer parser did not", i, typ)
			}
			// Re-encoding a parsed frame and parsing it again is stable.
			enc := fr.Append(nil)
			if len(enc) != fr.Length() {
				t.Fatalf("%s: Append %d bytes, Length %d", typ, len(enc), fr.Length())
			}
			if !bytes.Equal(enc, whole[i].Append(nil)) {
				t.Fatalf("%s: stream and buffer parsers disagree", typ)
			}
			again, n, err := parseFrame(enc)
			if err != nil || n != len(enc) || !bytes.Equal(again.Append(nil), enc) {
				t.Fatalf("%s: re-parse = %v, %d, %v", typ, again, n, err)
			}
			i++
		}
	})
}

// FuzzFrameScanner: muxConn finds yamux frame boundaries in bytes from the
// network, which may be anything and arrive in any pieces. Fed in pieces,
// the scanner must end where it ends when fed all at once, and every
// boundary it reports must be one a whole-stream parse finds.
func FuzzFrameScanner(f *testing.F) {
	f.Add(append(yamuxFrame(yamuxTypeData, 0, 1, []byte("body")), yamuxFrame(yamuxTypeWindowUpdate, 8, 1, nil)...), []byte{3, 1, 4})
	f.Add(yamuxFrame(yamuxTypeData, 0, 3, nil), []byte{11, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 2}, []byte{1})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		// The boundaries of a whole-stream parse.
		want := map[int]bool{0: true}
		for pos := 0; pos+yamuxHeaderLen <= len(data); {
			next := pos + yamuxHeaderLen
			if data[pos+1] == yamuxTypeData {
				next += int(binary.BigEndian.Uint32(data[pos+8 : pos+12]))
			}
			if next > len(data) {
				break
			}
			want[next] = true
			pos = next
		}
		var whole, pieces frameScanner
		whole.feed(data)
		r := &splitReader{data: data, sizes: sizes}
		buf := make([]byte, 64)
		pos := 0
		for {
			n, err := r.Read(buf)
			pieces.feed(buf[:n])
			pos += n
			if pieces.atBoundary() && !want[pos] {
				t.Fatalf("boundary reported at %d, not one of %v", pos, want)
			}
			if err != nil {
				break
			}
		}
		if pieces != whole {
			t.Fatalf("fed in pieces: %+v, at once: %+v", pieces, whole)
		}
	})
}
