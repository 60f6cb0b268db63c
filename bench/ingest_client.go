package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Header names of the ingest contract.
const (
	headerSignature = "X-Webhookops-Signature"
	headerWebhookID = "X-Webhook-Id"
	headerEventID   = "Webhook-Id" // set by the gateway on delivery: the event id
)

// signer builds signed ingest requests. Each worker gets its own body buffer
// and HMAC state from newWorker.
type signer struct {
	client   *http.Client
	url      string // http://host:port/in/{source}
	secret   []byte
	prefix   string // unique per run, so a rerun against --target is never a duplicate
	bodySize int
	want     int // the status that counts as success
}

func newSigner(client *http.Client, base, source, secret string, bodySize int) *signer {
	return &signer{
		client:   client,
		url:      strings.TrimRight(base, "/") + "/in/" + source,
		secret:   []byte(secret),
		prefix:   runPrefix(),
		bodySize: bodySize,
		want:     http.StatusAccepted,
	}
}

// runPrefix is a short random id for this run.
func runPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "b" + hex.EncodeToString(b[:])
}

// webhookID encodes the run, the sequence number and the time the request's
// latency counts from, so the sink can compute ingest-to-delivered latency
// without any shared table: "<prefix>-<seq>-<unix nanos>".
func appendWebhookID(b []byte, prefix string, seq int64, sent time.Time) []byte {
	b = append(b, prefix...)
	b = append(b, '-')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '-')
	return strconv.AppendInt(b, sent.UnixNano(), 10)
}

// parseWebhookID returns the send time encoded by appendWebhookID.
func parseWebhookID(id string) (prefix string, seq int64, sent time.Time, ok bool) {
	prefix, rest, ok1 := strings.Cut(id, "-")
	seqS, nanoS, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 {
		return "", 0, time.Time{}, false
	}
	seq, err1 := strconv.ParseInt(seqS, 10, 64)
	nanos, err2 := strconv.ParseInt(nanoS, 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, time.Time{}, false
	}
	return prefix, seq, time.Unix(0, nanos), true
}

// body is a request body over a worker's reused buffer. The transport may
// close a body after Do returns, and may ask GetBody for another one to retry
// on a fresh connection, so every body holds the worker's WaitGroup until it
// is closed and the worker waits for all of them before reusing the buffer.
type body struct {
	bytes.Reader
	inUse  *sync.WaitGroup
	closed atomic.Bool
}

func newBody(buf []byte, inUse *sync.WaitGroup) *body {
	inUse.Add(1)
	b := &body{inUse: inUse}
	b.Reset(buf)
	return b
}

func (b *body) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.inUse.Done()
	}
	return nil
}

// newWorker returns one worker's send function. Per request it rewrites the
// id into its own body buffer, signs it with its own HMAC state and sends it.
func (s *signer) newWorker() sendFunc {
	mac := hmac.New(sha256.New, s.secret)
	var (
		id    = make([]byte, 0, 64)
		buf   = make([]byte, 0, s.bodySize+128)
		sum   = make([]byte, 0, sha256.Size)
		sig   = make([]byte, 0, len("sha256=")+2*sha256.Size)
		scrap = make([]byte, 512)
		inUse sync.WaitGroup
	)
	getBody := func() (io.ReadCloser, error) { return newBody(buf, &inUse), nil }
	return func(ctx context.Context, seq int64, sent time.Time) error {
		id = appendWebhookID(id[:0], s.prefix, seq, sent)
		buf = appendBody(buf[:0], id, s.bodySize)
		mac.Reset()
		mac.Write(buf)
		sum = mac.Sum(sum[:0])
		sig = append(sig[:0], "sha256="...)
		sig = hex.AppendEncode(sig, sum)

		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, nil)
		if err != nil {
			return err
		}
		req.Body = newBody(buf, &inUse)
		req.GetBody = getBody
		req.ContentLength = int64(len(buf))
		req.Header = http.Header{
			"Content-Type":  {"application/json"},
			headerSignature: {string(sig)},
			headerWebhookID: {string(id)},
		}
		resp, err := s.client.Do(req)
		if err == nil {
			err = readStatus(resp, s.want, scrap)
		}
		inUse.Wait() // the transport has let go of buf
		return err
	}
}

// readStatus drains and closes resp and returns an error unless its status is want.
func readStatus(resp *http.Response, want int, scrap []byte) error {
	defer resp.Body.Close()
	if resp.StatusCode != want {
		n, _ := io.ReadFull(resp.Body, scrap[:min(len(scrap), 200)])
		_, _ = io.Copy(io.Discard, resp.Body)
		return &errStatus{code: resp.StatusCode, body: strings.TrimSpace(string(scrap[:n]))}
	}
	for {
		if _, err := resp.Body.Read(scrap); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// appendBody writes a JSON webhook body of about size bytes carrying id.
func appendBody(b, id []byte, size int) []byte {
	b = append(b, `{"type":"bench.event","id":"`...)
	b = append(b, id...)
	b = append(b, `","pad":"`...)
	for n := size - len(b) - 2; n > 0; n-- {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}
