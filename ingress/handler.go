package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/refusals"
	"github.com/webhookops/webhookops/ingress/verify"
)

// DefaultMaxBody is the default body limit: 1 MiB.
const DefaultMaxBody = 1 << 20

// retryBusy is the Retry-After, in seconds, when memory for bodies is
// short: it frees as soon as requests in flight finish.
const retryBusy = "1"

// retryStorage is the Retry-After, in seconds, while storage refuses new
// events (low disk space until an operator frees some, or a failed write
// until a restart).
const retryStorage = "30"

// Config configures the handler. A zero field means the default.
type Config struct {
	Node    *actors.Node
	MaxBody int64
	// MaxInFlight caps the bytes of request bodies held in memory across
	// all requests; past it a request is answered 503 with Retry-After.
	MaxInFlight int64
	Logger      *slog.Logger
	// Now is the clock for signature timestamps; nil is the node's clock.
	Now func() time.Time
	// Ingest stores a verified event; nil is Node.Ingest. A cluster member
	// sets it to propose the event to its partition's raft shard.
	Ingest func(context.Context, actors.IngestRequest, *actors.SourceView) (actors.IngestResult, error)
}

// Handler serves POST /in/{source}.
type Handler struct {
	cfg    Config
	router *httprouter.Router
	budget budget
}

// NewHandler builds the ingest handler.
func NewHandler(cfg Config) *Handler {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Node.Clock().Now
	}
	if cfg.Ingest == nil {
		cfg.Ingest = cfg.Node.Ingest
	}
	h := &Handler{cfg: cfg, router: httprouter.New(), budget: budget{max: cfg.MaxInFlight}}
	h.router.POST("/in/:source", h.ingest)
	h.router.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint; post webhooks to /in/{source}")
	})
	h.router.HandleMethodNotAllowed = true
	h.router.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

type response struct {
	EventID   string `json:"event_id"`
	Duplicate bool   `json:"duplicate"`
}

func (h *Handler) ingest(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	n := h.cfg.Node
	if !n.Ready() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "the node is starting or stopping; retry")
		return
	}
	slug := ps.ByName("source")
	src, ok := n.Source(slug)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_source", "no enabled source "+strconv.Quote(slug))
		return
	}
	if err := n.DB().Accepting(); err != nil {
		// Free space is below the floor or a write failed: the reason is
		// in the log and /readyz, not for senders.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", retryStorage)
		writeError(w, http.StatusServiceUnavailable, "storage_unavailable", "the node is not taking events now; retry")
		return
	}
	if r.ContentLength > h.cfg.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "body exceeds "+strconv.FormatInt(h.cfg.MaxBody, 10)+" bytes")
		return
	}
	body, held, err := readBody(w, r, h.cfg.MaxBody, &h.budget)
	defer h.budget.give(held)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "body exceeds "+strconv.FormatInt(h.cfg.MaxBody, 10)+" bytes")
			return
		}
		if errors.Is(err, errBusy) {
			// Keep-alive would hold the connection (and the unread rest of
			// the body) for nothing.
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", retryBusy)
			writeError(w, http.StatusServiceUnavailable, "busy", "too many request bodies in flight; retry")
			return
		}
		writeError(w, http.StatusBadRequest, "bad_body", "could not read the body: "+err.Error())
		return
	}
	if src.Verify != "none" {
		if err := verify.Verify(src.Provider, src.SecretBytes, r.Header, body, h.cfg.Now()); err != nil {
			reason := "invalid"
			var ve *verify.Error
			if errors.As(err, &ve) {
				reason = ve.Reason
			}
			// Tallied: one audit row per source and reason per interval.
			n.Rejected(refusals.Rejection{Action: "event.signature_rejected", ObjectType: "source", ObjectID: slug,
				Reason: reason, RemoteAddr: r.RemoteAddr})
			n.Metrics().SignatureReject.WithLabelValues(slug, reason).Inc()
			writeError(w, http.StatusUnauthorized, "signature_"+reason, err.Error())
			return
		}
	}
	key, eventType := verify.Extract(src.Provider, r.Header, body)
	if src.DedupesOnBody() {
		// The provider's id header is not signed: a captured request sent
		// again with a new id must still be a duplicate.
		key = verify.BodyKey(r.Header.Get(verify.TypeHeader(src.Provider)), body)
	}
	res, err := h.cfg.Ingest(r.Context(), actors.IngestRequest{
		Source:    slug,
		IdemKey:   key,
		EventType: eventType,
		Headers:   headerList(r.Header),
		Body:      body,
	}, src)
	if err != nil {
		h.cfg.Logger.Warn("ingest failed", "source", slug, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage_unavailable", "the event was not stored; retry")
		return
	}
	status := http.StatusAccepted
	if res.Duplicate {
		status = http.StatusOK
	}
	writeAnswer(w, status, res.EventID, res.Duplicate)
}

// jsonContentType is the Content-Type of every answer, shared: net/http
// only reads header values.
var jsonContentType = []string{"application/json"}

// writeAnswer writes an accepted or duplicate event's answer: the bytes
// writeJSON would write for response{id, duplicate}, put together without
// an encoder (the encoder and its reflection were 2% of a node's CPU under
// full ingest). An id with a byte JSON would escape goes through writeJSON.
func writeAnswer(w http.ResponseWriter, status int, id string, duplicate bool) {
	if !plainID(id) {
		writeJSON(w, status, response{EventID: id, Duplicate: duplicate})
		return
	}
	var buf [96]byte
	b := append(buf[:0], `{"event_id":"`...)
	b = append(b, id...)
	b = append(b, `","duplicate":`...)
	b = strconv.AppendBool(b, duplicate)
	b = append(b, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(b)
}

// plainID reports whether id is letters, digits, '_' and '-' only: JSON
// writes it as it is.
func plainID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// headerList flattens headers, names sorted, each name's values in order.
func headerList(h http.Header) [][2]string {
	names := make([]string, 0, len(h))
	total := 0
	for k, v := range h {
		names = append(names, k)
		total += len(v)
	}
	slices.Sort(names)
	out := make([][2]string, 0, total)
	for _, k := range names {
		for _, v := range h[k] {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e errorBody
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}
