package admin

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/wal"
)

// auditMatch reports whether e passes f.
func auditMatch(f *AuditFilter, e *wal.AuditEntry) bool {
	if f.Action != "" {
		if p, ok := strings.CutSuffix(f.Action, "*"); ok || strings.HasSuffix(f.Action, ".") {
			if !ok {
				p = f.Action
			}
			if !strings.HasPrefix(e.Action, p) {
				return false
			}
		} else if e.Action != f.Action {
			return false
		}
	}
	switch {
	case f.ObjectType != "" && e.ObjectType != f.ObjectType,
		f.ObjectID != "" && e.ObjectID != f.ObjectID,
		f.ReplayID != "" && e.ReplayID != f.ReplayID,
		f.Actor != "" && e.Actor != f.Actor,
		!f.Since.IsZero() && e.At.Before(f.Since),
		!f.Until.IsZero() && !e.At.Before(f.Until):
		return false
	}
	return true
}

func (s *Server) listAudit(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	q := r.URL.Query()
	known := []string{"action", "object_type", "object_id", "replay_id", "actor", "since", "until", "cursor", "limit"}
	for k := range q {
		if !slices.Contains(known, k) {
			return 0, nil, errBadRequest("unknown_field", k, "unknown query parameter %q", k)
		}
	}
	f := AuditFilter{Action: q.Get("action"), ObjectType: q.Get("object_type"), ObjectID: q.Get("object_id"), ReplayID: q.Get("replay_id"), Actor: q.Get("actor")}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return 0, nil, errBadRequest("invalid_query", p.name, "must be an RFC 3339 time, got %q", v)
			}
			*p.t = t
		}
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.AuditLog(f, q.Get("cursor"), limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

// AuditLog lists the audit entries matching f, newest first, after cursor.
func (s *Server) AuditLog(f AuditFilter, cursor string, limit int) (Page[wal.AuditEntry], error) {
	before, err := parseCursor(cursor)
	if err != nil {
		return Page[wal.AuditEntry]{}, err
	}
	items, next, err := s.db.ListAudit(before, limit, func(e *wal.AuditEntry) bool { return auditMatch(&f, e) })
	if err != nil {
		return Page[wal.AuditEntry]{}, err
	}
	return newPage(items, formatCursor(next)), nil
}
