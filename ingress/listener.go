package ingress

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConns is the default cap on open ingest connections.
const DefaultMaxConns = 4096

// busyResponse is written, in clear, to a connection over the cap of a
// plain-HTTP listener before it is closed.
var busyResponse = func() []byte {
	body := `{"error":{"code":"too_many_connections","message":"too many open connections; retry"}}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Retry-After: " + retryBusy + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// ConnLimiter is a listener that holds at most max connections open at
// once. A connection accepted over the cap is closed at once, never queued:
// a listener that stops accepting leaves new clients hanging in the
// kernel's backlog behind whoever holds the slots, which is worse for an
// honest sender than a quick refusal it retries. On a plain-HTTP listener
// the refused connection is first told 503 with Retry-After (written into
// the empty socket buffer, so it never blocks the accept loop); the client
// may still see a reset instead if it had sent its request already. Over
// TLS it is only closed.
type ConnLimiter struct {
	net.Listener
	max       int64
	plainHTTP bool
	open      atomic.Int64
	refused   atomic.Int64
}

// LimitListener wraps l so at most max connections are open at once.
// plainHTTP says l speaks HTTP in clear, so a refusal can say 503.
func LimitListener(l net.Listener, max int, plainHTTP bool) *ConnLimiter {
	return &ConnLimiter{Listener: l, max: int64(max), plainHTTP: plainHTTP}
}

// Accept returns the next connection under the cap.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		if l.plainHTTP {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(busyResponse)
		}
		c.Close()
	}
}

// Open reports the connections open now.
func (l *ConnLimiter) Open() int64 { return l.open.Load() }

// Refused reports the connections refused over the cap so far.
func (l *ConnLimiter) Refused() int64 { return l.refused.Load() }

type limitedConn struct {
	net.Conn
	l    *ConnLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// MaxHeaderBytes caps an ingest request's headers. Providers send a few
// KiB; net/http's default (1 MiB) would let each of the connections the cap
// allows hold a megabyte of headers.
const MaxHeaderBytes = 64 << 10

// HTTP2Config bounds what one HTTP/2 connection may make the server buffer
// (it applies once ingest serves TLS): at most 100 requests at once and
// 256 KiB of unread body across them, 64 KiB per request. Bodies are then
// read through the same in-flight budget as HTTP/1.1 ones.
func HTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          100,
		MaxReceiveBufferPerConnection: 256 << 10,
		MaxReceiveBufferPerStream:     64 << 10,
	}
}
