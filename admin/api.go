package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/wal"
)

// maxRequestBody bounds an admin request body.
const maxRequestBody = 1 << 20

func errBadRequest(code, field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

func errConflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf(format, args...)}
}

// errUnavailable is a 503: not now, retry (writeError adds Retry-After).
func errUnavailable(format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf(format, args...)}
}

// toError maps an error from the node or the store to the API shape.
// field strips the "sources[0]." style prefix Apply puts on field names,
// since the API handles one object at a time.
func toError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var fe *model.FieldError
	if errors.As(err, &fe) {
		return &Error{Status: http.StatusBadRequest, Code: "validation_failed", Field: stripItemPrefix(fe.Field), Message: fe.Message}
	}
	switch {
	case errors.Is(err, actors.ErrNotFound), errors.Is(err, wal.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, actors.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	case errors.Is(err, actors.ErrElsewhere):
		return &Error{Status: http.StatusConflict, Code: "elsewhere", Message: err.Error()}
	case errors.Is(err, actors.ErrUnavailable), errors.Is(err, wal.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the node cannot take the change now; retry: " + err.Error()}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}

// stripItemPrefix turns "sources[0].slug" or "sources[billing].routes[0].destination"
// into "slug" and "routes[0].destination".
func stripItemPrefix(f string) string {
	for _, k := range []string{"sources[", "destinations[", "agents[", "forwards["} {
		if strings.HasPrefix(f, k) {
			if i := strings.Index(f, "]."); i > 0 {
				return f[i+2:]
			}
		}
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, `{"error":{"code":"internal","message":%q}}`+"\n", "encoding the answer failed: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	// Every 503 here means "not now": a cluster member without a
	// metadata quorum, a store closing, a member that did not answer.
	// Clients and proxies that honour Retry-After come back in a second.
	if e.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.Status, ErrorBody{Error: e})
}

// decodeBody reads a JSON object into v, rejecting unknown fields, trailing
// data and bodies over maxRequestBody, and naming the field that failed.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the body exceeds %d bytes", maxRequestBody)}
		}
		return errBadRequest("bad_body", "", "could not read the body: %v", err)
	}
	return decodeJSON(body, v)
}

func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errBadRequest("invalid_json", "", "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return errBadRequest("invalid_json", "", "unexpected data after the JSON object")
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errBadRequest("invalid_json", "", "malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errBadRequest("invalid_json", "", "the body must be a JSON object, not %s", typ.Value)
		}
		return errBadRequest("invalid_field", typ.Field, "must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return errBadRequest("unknown_field", name, "unknown field %q", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("invalid_json", "", "the JSON body is truncated")
	}
	// An UnmarshalJSON method failed (a duration, say): find which field by
	// decoding the fields one at a time.
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) == nil {
		for k, val := range raw {
			one, _ := json.Marshal(map[string]json.RawMessage{k: val})
			if ferr := json.Unmarshal(one, v); ferr != nil {
				return errBadRequest("invalid_field", k, "%v", ferr)
			}
		}
	}
	return errBadRequest("invalid_json", "", "%v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return goKind
}

func newPage[T any](items []T, next string) Page[T] {
	if items == nil {
		items = []T{}
	}
	return Page[T]{Items: items, NextCursor: next}
}

// queryLimit reads ?limit=, default def, capped at max.
func queryLimit(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, errBadRequest("invalid_query", "limit", "must be an integer between 1 and %d", max)
	}
	return n, nil
}
