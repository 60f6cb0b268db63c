package tunnelproto

import (
	"bytes"
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
