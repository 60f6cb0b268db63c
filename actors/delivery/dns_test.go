package delivery

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// dnsRecords maps a lower-case fully qualified name ("hooks.internal.test.")
// to the addresses it resolves to.
type dnsRecords map[string][]netip.Addr

// newTestResolver starts a tiny authoritative DNS server on 127.0.0.1 UDP
// answering A and AAAA queries from records (NXDOMAIN for any other name),
// and returns a pure-Go resolver that asks only it. The server stops when
// the test ends.
func newTestResolver(t *testing.T, records dnsRecords) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], records); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	addr := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

// dnsAnswer builds the response to query q, or nil for a malformed query.
func dnsAnswer(q []byte, records dnsRecords) []byte {
	const (
		typeA    = 1
		typeAAAA = 28
	)
	if len(q) < 12 {
		return nil
	}
	off := 12
	var labels []string
	for {
		if off >= len(q) {
			return nil
		}
		l := int(q[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(q) {
			return nil
		}
		labels = append(labels, strings.ToLower(string(q[off:off+l])))
		off += l
	}
	if off+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	off += 4 // type, class

	addrs, known := records[strings.Join(labels, ".")+"."]
	var answers []netip.Addr
	for _, a := range addrs {
		if (qtype == typeA && a.Is4()) || (qtype == typeAAAA && a.Is6()) {
			answers = append(answers, a)
		}
	}
	flags := uint16(0x8580) // response, authoritative, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	resp := append(make([]byte, 0, 512), q[0], q[1])
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1) // questions
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
	resp = binary.BigEndian.AppendUint16(resp, 0) // authority
	resp = binary.BigEndian.AppendUint16(resp, 0) // additional
	resp = append(resp, q[12:off]...)
	for _, a := range answers {
		resp = append(resp, 0xc0, 12) // pointer to the question's name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // class IN
		resp = binary.BigEndian.AppendUint32(resp, 60)
		b := a.AsSlice()
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(b)))
		resp = append(resp, b...)
	}
	return resp
}

func TestTestResolver(t *testing.T) {
	r := newTestResolver(t, dnsRecords{
		"both.internal.test.": {netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")},
	})
	got, err := r.LookupNetIP(context.Background(), "ip", "both.internal.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %v, want 10.0.0.5 and fd00::5", got)
	}
	if _, err := r.LookupNetIP(context.Background(), "ip", "nowhere.internal.test"); err == nil {
		t.Fatal("unknown name resolved")
	}
}
