package ingress

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// DefaultMaxInFlight is the default cap on bytes of request bodies held in
// memory across all requests at once: 64 MiB.
const DefaultMaxInFlight = 64 << 20

// firstAlloc is the largest first buffer for a body. A body grows past it
// only as its bytes arrive, so a sender that declares a large
// Content-Length and then trickles (or sends nothing) costs this much, not
// what it declared.
const firstAlloc = 16 << 10

// errBusy: the in-flight budget has no room for this body now.
var errBusy = errors.New("ingress: too many body bytes in flight")

// budget counts the bytes of body buffers that requests hold, across all
// requests. Taking fails rather than waits: a request that cannot be
// buffered now is answered 503 with Retry-After, so a flood ties up neither
// memory nor goroutines.
type budget struct {
	max  int64
	used atomic.Int64
}

func (b *budget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// InFlight reports the bytes of body buffers held now.
func (h *Handler) InFlight() int64 { return h.budget.used.Load() }

// readBody reads the whole body under limit into a buffer that grows as
// bytes arrive: the first allocation is at most firstAlloc, then it doubles,
// never past the declared Content-Length (plus one byte to see the end) or
// the limit. Every byte of capacity is taken from b first; held is what the
// caller must give back once it is done with the body. A body over limit
// answers *http.MaxBytesError; no room in b answers errBusy.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, b *budget) (body []byte, held int64, err error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	ceiling := limit + 1 // room to see one byte too many
	if n := r.ContentLength; n >= 0 && n < limit {
		ceiling = n + 1 // room to see the end
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			next := min(ceiling, firstAlloc)
			if cap(buf) > 0 {
				next = min(2*int64(cap(buf)), ceiling)
			}
			if next <= int64(cap(buf)) {
				// Full at the ceiling and no EOF yet: net/http stops a body
				// at its Content-Length, so only a reader that ignores it
				// gets here.
				return nil, held, errors.New("body longer than Content-Length")
			}
			if !b.take(next - int64(cap(buf))) {
				return nil, held, errBusy
			}
			held += next - int64(cap(buf))
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		k, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err == io.EOF {
			return buf, held, nil
		}
		if err != nil {
			return nil, held, err
		}
	}
}
