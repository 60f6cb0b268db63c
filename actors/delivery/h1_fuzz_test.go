package delivery

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzH1Answer feeds arbitrary bytes as a receiver's answer to a pooled
// connection's request, written in pieces of a fuzzed size: reading the
// answer and its body never panics, never buffers a header past
// maxResponseHeaderBytes, and gives either an error or a final status.
func FuzzH1Answer(f *testing.F) {
	for _, seed := range []string{
		okResponse,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nuntil close",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nrest",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nextra",
		"HTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nContent-Length: 4\r\n\r\nbusy",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/9.9 200 OK\r\n\r\n",
		"garbage\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\n X-Folded: 1\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, answer []byte, piece uint8) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer server.Close()
			req, err := http.ReadRequest(bufio.NewReader(server))
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			n := int(piece) + 1
			if piece == 0 {
				n = len(answer) + 1
			}
			for b := answer; len(b) > 0; {
				k := min(n, len(b))
				if _, err := server.Write(b[:k]); err != nil {
					return
				}
				b = b[k:]
			}
		}()
		defer func() {
			client.Close() // the receiver may still be writing past the drain
			<-done
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		cc := newH1Conn(client)
		out := outgoing{target: "/hook", host: "example.test", header: http.Header{"Webhook-Id": {"e"}}, body: []byte("body")}
		resp, _, err := cc.exchange(&out)
		if cc.lr.n < 0 {
			t.Fatalf("header budget went below zero: %d", cc.lr.n)
		}
		if err != nil {
			if resp != nil {
				t.Fatalf("error %v with a response", err)
			}
			if strings.Contains(err.Error(), "deadline") {
				t.Fatalf("answer %q: timed out instead of ending at its close", answer)
			}
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || (resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols) {
			t.Fatalf("final status %d", resp.StatusCode)
		}
		excerpt := readExcerpt(resp.Body)
		if len(excerpt) > ResponseExcerptLimit {
			t.Fatalf("excerpt of %d bytes", len(excerpt))
		}
		resp.Body.Close()
	})
}
