package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// h1Pool makes attempts to plain-http destinations in mode "http" over
// HTTP/1.1 keep-alive connections, each attempt wholly on the caller's
// goroutine: it writes the request, reads the response and its body, and
// puts the connection back. net/http's Transport runs a reader and a writer
// goroutine per connection and hands every request and response between
// them and the caller; under steady delivery those hand-offs, their
// channels and timers were about a third of what an attempt cost. The
// request is written as Request.Write writes it, without building an
// http.Request (outgoing.write); the answer is parsed by http.ReadResponse.
// https destinations keep the Transport (TLS, HTTP/2), and so does a Host
// that needs net/http's cleaning (plainHost).
//
// One pool per transportKey: a connection dialled under one SSRF guard
// setting is never reused under another.
type h1Pool struct {
	dialer *net.Dialer
	// idleTimeout closes a connection idle this long (h1IdleTimeout).
	idleTimeout time.Duration

	mu      sync.Mutex // guards the fields below
	idle    map[string][]*h1Conn
	nIdle   int
	janitor *time.Timer // armed while anything is idle
}

// Limits of the pool, as the Transport's (newTransport).
const (
	h1MaxIdle        = 1024
	h1MaxIdlePerHost = 64
	h1IdleTimeout    = 90 * time.Second
)

// errHeaderTooLarge is the attempt's error when a response's header goes
// past maxResponseHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("response headers exceeded %d bytes; aborted", maxResponseHeaderBytes)

// aLongTimeAgo is a deadline that has passed: it wakes a blocked read or
// write at once.
var aLongTimeAgo = time.Unix(1, 0)

// h1Conn is one keep-alive connection. The reader under br stops at a limit
// while a response header is read, so a receiver cannot make us buffer more
// than maxResponseHeaderBytes of it.
type h1Conn struct {
	c      net.Conn
	lr     limitReader
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	probe  idleProbe
}

type limitReader struct {
	r io.Reader
	n int64 // bytes left; at 0 reads fail with errHeaderTooLarge
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func newH1Conn(c net.Conn) *h1Conn {
	cc := &h1Conn{c: c}
	cc.lr.r = c
	cc.br = bufio.NewReaderSize(&cc.lr, 4<<10)
	cc.bw = bufio.NewWriterSize(c, 4<<10)
	cc.probe.init(c)
	return cc
}

func newH1Pool(dialer *net.Dialer) *h1Pool {
	return &h1Pool{dialer: dialer, idleTimeout: h1IdleTimeout, idle: map[string][]*h1Conn{}}
}

// roundTrip sends req to addr (host:port) and returns its response. Its body
// must be read and closed: closing it puts the connection back when the
// body was read to its end, and closes the connection otherwise. deadline
// bounds the whole attempt, connect to last byte; cancelling ctx ends it
// at once.
//
// A request that fails on a reused connection before any byte of an answer
// arrived is sent once more, the same bytes, on a newly dialled connection
// (never another pooled one, which may be as dead): the receiver had closed
// the connection, and may have read the request before it did (net/http
// does the same for requests marked idempotent, as ours are; a receiver
// dedupes on webhook-id).
func (p *h1Pool) roundTrip(ctx context.Context, deadline time.Time, req *outgoing, addr string) (*http.Response, error) {
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var cc *h1Conn
		reused := false
		if try == 0 {
			cc, reused = p.get(addr)
		}
		if cc == nil {
			dctx, cancel := context.WithDeadline(ctx, deadline)
			c, err := p.dialer.DialContext(dctx, "tcp", addr)
			cancel()
			if err != nil {
				if ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
					err = fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
				}
				return nil, err
			}
			cc = newH1Conn(c)
		}
		if err := cc.c.SetDeadline(deadline); err != nil {
			cc.c.Close()
			return nil, err
		}
		stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(aLongTimeAgo) })
		resp, answered, err := cc.exchange(req)
		if err == nil {
			resp.Body = &h1Body{r: resp.Body, cc: cc, pool: p, addr: addr, stop: stop, reuse: !resp.Close}
			return resp, nil
		}
		stop()
		cc.c.Close()
		// Only the first try takes a pooled connection (reused), so
		// there is never a third.
		if !reused || answered || ctx.Err() != nil {
			return nil, err
		}
	}
}

// outgoing is one attempt's request: a POST of body to target (the URL's
// path and query) on host, with header.
type outgoing struct {
	target, host string
	header       http.Header
	body         []byte
}

// postRequest is what ReadResponse is told the request was: it reads only
// the method (a HEAD's answer has no body). Shared, never written.
var postRequest = &http.Request{Method: http.MethodPost}

// write writes the request as net/http's Request.Write would for it, less
// the sorting of header names (their order carries no meaning; each name's
// values keep theirs): request line, Host, the header, Content-Length and
// the body. Header names are tokens and values free of CR and LF
// (buildHeader checks what is not ours; ours are made so), and a value
// that is not anyway is written with spaces for its line breaks, as
// net/http does.
func (o *outgoing) write(bw *bufio.Writer) error {
	bw.WriteString("POST ")
	bw.WriteString(o.target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(o.host)
	bw.WriteString("\r\n")
	for k, vs := range o.header {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = lineBreakToSpace.Replace(v)
			}
			bw.WriteString(strings.Trim(v, " \t"))
			bw.WriteString("\r\n")
		}
	}
	var n [20]byte
	bw.WriteString("Content-Length: ")
	bw.Write(strconv.AppendInt(n[:0], int64(len(o.body)), 10))
	bw.WriteString("\r\n\r\n")
	_, err := bw.Write(o.body)
	return err
}

// lineBreakToSpace turns a header value's CR and LF into spaces, as
// net/http's headerNewlineToSpace does. Made once: safe for concurrent use.
var lineBreakToSpace = strings.NewReplacer("\r", " ", "\n", " ")

// plainHost reports whether host can go on the wire as it is: an ASCII
// name or address with an optional port, nothing net/http's Request.Write
// would clean (a non-ASCII name it turns into punycode, a zone, a path or
// a space it cuts off).
func plainHost(host string) bool {
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// exchange writes req and reads the response header. answered reports
// whether any byte of an answer arrived.
func (cc *h1Conn) exchange(req *outgoing) (resp *http.Response, answered bool, err error) {
	werr := req.write(cc.bw)
	if werr == nil {
		werr = cc.bw.Flush()
	}
	if werr != nil {
		// The receiver may have answered and hung up before reading the
		// whole body (a 413 for one too large, say): its answer is the
		// outcome, as net/http's Transport takes it. The connection is
		// done either way.
		if resp, answered, err := cc.readAnswer(); err == nil {
			resp.Close = true
			return resp, answered, nil
		} else if answered {
			return nil, true, err
		}
		return nil, false, werr
	}
	return cc.readAnswer()
}

// readAnswer reads the response header, skipping 1xx informational
// responses. Their headers and the final one share one budget of
// maxResponseHeaderBytes, as in net/http's Transport, so a receiver sending
// 1xx answers for ever fails the attempt at once instead of holding it for
// its timeout.
func (cc *h1Conn) readAnswer() (resp *http.Response, answered bool, err error) {
	cc.lr.n = maxResponseHeaderBytes
	if _, err := cc.br.Peek(1); err != nil {
		return nil, false, err
	}
	for {
		resp, err = http.ReadResponse(cc.br, postRequest)
		if err != nil {
			return nil, true, err
		}
		if err := checkStatus(resp.StatusCode); err != nil {
			return nil, true, err
		}
		if resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	cc.lr.n = math.MaxInt64
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Close = true // the connection speaks something else now
	}
	return resp, true, nil
}

// h1Body is a response body on a pooled connection.
type h1Body struct {
	r     io.ReadCloser
	cc    *h1Conn
	pool  *h1Pool
	addr  string
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close puts the connection back if the body was read to its end and the
// attempt's cancellation had not fired on it; otherwise it closes it.
func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop is false when the cancellation ran (or runs): the connection's
	// deadline is spoiled, never reuse it.
	// Bytes buffered past the answer were never asked for: the next
	// request on the connection would take them for its answer.
	if stopped := b.stop(); stopped && b.eof && b.reuse && b.cc.br.Buffered() == 0 {
		b.pool.put(b.addr, b.cc)
		return nil
	}
	return b.cc.c.Close()
}

// get takes the most recently used idle connection to addr that is still
// usable (idleProbe), if any, and closes the ones it finds dead.
func (p *h1Pool) get(addr string) (*h1Conn, bool) {
	for {
		cc := p.pop(addr)
		if cc == nil {
			return nil, false
		}
		if cc.probe.usable() {
			return cc, true
		}
		cc.c.Close()
	}
}

// pop takes the most recently used idle connection to addr not idle for
// idleTimeout, if any.
func (p *h1Pool) pop(addr string) *h1Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.idle[addr]
	for len(conns) > 0 {
		cc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		conns = conns[:len(conns)-1]
		p.nIdle--
		if time.Since(cc.idleAt) < p.idleTimeout {
			p.setIdle(addr, conns)
			return cc
		}
		cc.c.Close()
	}
	p.setIdle(addr, conns)
	return nil
}

func (p *h1Pool) setIdle(addr string, conns []*h1Conn) {
	if len(conns) == 0 {
		delete(p.idle, addr)
		return
	}
	p.idle[addr] = conns
}

// put keeps cc for the next attempt to addr, or closes it when the pool is
// full.
func (p *h1Pool) put(addr string, cc *h1Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nIdle >= h1MaxIdle || len(p.idle[addr]) >= h1MaxIdlePerHost {
		cc.c.Close()
		return
	}
	cc.idleAt = time.Now()
	p.idle[addr] = append(p.idle[addr], cc)
	p.nIdle++
	if p.janitor == nil {
		p.janitor = time.AfterFunc(p.idleTimeout, p.sweep)
	}
}

// sweep closes the connections idle for idleTimeout, and comes back while
// any stay idle.
func (p *h1Pool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.janitor = nil
	for addr, conns := range p.idle {
		kept := conns[:0]
		for _, cc := range conns {
			if time.Since(cc.idleAt) >= p.idleTimeout {
				cc.c.Close()
				p.nIdle--
				continue
			}
			kept = append(kept, cc)
		}
		clear(conns[len(kept):])
		p.setIdle(addr, kept)
	}
	if p.nIdle > 0 {
		p.janitor = time.AfterFunc(p.idleTimeout, p.sweep)
	}
}

// closeIdle closes every idle connection. The pool stays usable.
func (p *h1Pool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, conns := range p.idle {
		for _, cc := range conns {
			cc.c.Close()
		}
		delete(p.idle, addr)
	}
	p.nIdle = 0
	if p.janitor != nil {
		p.janitor.Stop()
		p.janitor = nil
	}
}
