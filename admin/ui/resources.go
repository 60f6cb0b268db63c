package ui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

// --- destinations ---

type destRow struct {
	admin.DestinationOut
	Err string // the stats could not be read
}

type destinationsData struct {
	Items []destRow
	Next  string
	Prev  string
}

func (u *UI) destinations(w http.ResponseWriter, r *http.Request, c *call) {
	all := u.adm.Destinations()
	after := r.URL.Query().Get("after")
	start, _ := slices.BinarySearchFunc(all, after, func(d admin.DestinationOut, s string) int { return strings.Compare(d.Slug, s) })
	if after != "" && start < len(all) && all[start].Slug == after {
		start++
	}
	end := min(start+pageSize, len(all))
	d := destinationsData{}
	if end < len(all) {
		d.Next = "?after=" + url.QueryEscape(all[end-1].Slug)
	}
	if after != "" {
		d.Prev = "?"
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	for _, x := range all[start:end] {
		row := destRow{DestinationOut: x}
		if full, err := u.adm.Destination(ctx, x.Slug); err != nil {
			row.Err = admin.ErrorOf(err).Message
		} else {
			row.DestinationOut = full
		}
		d.Items = append(d.Items, row)
	}
	u.render(w, r, c, http.StatusOK, "destinations", "Destinations", d)
}

// setPaused pauses or resumes a destination.
func (u *UI) setPaused(paused bool) authed {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		slug := r.PathValue("slug")
		if _, err := u.adm.SetPaused(slug, paused, c.p); err != nil {
			u.fail(w, r, c, err)
			return
		}
		msg := "Resumed " + slug + "."
		if paused {
			msg = "Paused " + slug + ": its queue keeps filling until you resume it."
		}
		u.done(w, r, c, "/ui/destinations", msg)
	}
}

type secretData struct {
	What, Object, Secret, Note, Back string
}

// rotateSigningSecret shows the new secret on the answer itself, the only
// time it is shown; it is never kept in the session.
func (u *UI) rotateSigningSecret(w http.ResponseWriter, r *http.Request, c *call) {
	slug := r.PathValue("slug")
	rot, err := u.adm.RotateSigningSecret(slug, "", c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.render(w, r, c, http.StatusOK, "secret", "New signing secret", secretData{
		What: "signing secret", Object: "destination " + slug, Secret: rot.Secret, Back: "/ui/destinations",
		Note: "Deliveries carry signatures by this secret and the previous one for " + admin.SigningSecretOverlap.String() + "; give the receiver this one before then.",
	})
}

type deadLettersData struct {
	Dest  string
	Items []admin.DeadLetter
	Next  string
	Count int
}

func (u *UI) deadLetters(w http.ResponseWriter, r *http.Request, c *call) {
	slug := r.PathValue("slug")
	ctx, cancel := pageCtx(r)
	defer cancel()
	dest, err := u.adm.Destination(ctx, slug)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	page, err := u.adm.DeadLetters(slug, r.URL.Query().Get("cursor"), pageSize)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	d := deadLettersData{Dest: slug, Items: page.Items, Count: dest.Stats.DeadLetters}
	if page.NextCursor != "" {
		d.Next = "?cursor=" + url.QueryEscape(page.NextCursor)
	}
	u.render(w, r, c, http.StatusOK, "dead-letters", "Dead letters: "+slug, d)
}

// redrive replays dead letters: the ones ticked (event_id, repeated), or
// all of them matching the filter fields.
func (u *UI) redrive(w http.ResponseWriter, r *http.Request, c *call) {
	slug := r.PathValue("slug")
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, c, &admin.Error{Status: http.StatusBadRequest, Code: "bad_body", Message: err.Error()})
		return
	}
	req := admin.RedriveRequest{EventType: strings.TrimSpace(r.PostForm.Get("event_type")), Reason: r.PostForm.Get("reason")}
	if r.PostForm.Get("scope") == "selected" {
		req.EventIDs = r.PostForm["event_id"]
		if len(req.EventIDs) == 0 {
			u.fail(w, r, c, &admin.Error{Status: http.StatusBadRequest, Code: "validation_failed", Field: "event_ids", Message: "tick at least one dead letter"})
			return
		}
	}
	var err error
	if req.Since, err = parseFormTime("since", r.PostForm.Get("since")); err == nil {
		req.Until, err = parseFormTime("until", r.PostForm.Get("until"))
	}
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	rec, err := u.adm.Redrive(slug, req, c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.done(w, r, c, "/ui/replays/"+url.PathEscape(rec.ID), "Redrive "+rec.ID+" of "+slug+"'s dead letters started.")
}

// --- agents and forwards ---

func (u *UI) agents(w http.ResponseWriter, r *http.Request, c *call) {
	u.render(w, r, c, http.StatusOK, "agents", "Agents", u.adm.Agents())
}

type enrolledData struct {
	ID, Command, Secret string
	Created             bool
}

// targets splits a list of host:port typed with commas, spaces or lines.
func targets(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (u *UI) enroll(w http.ResponseWriter, r *http.Request, c *call) {
	id := strings.TrimSpace(r.PostFormValue("id"))
	var allowed []string
	if t := r.PostFormValue("allowed_targets"); strings.TrimSpace(t) != "" {
		allowed = targets(t)
	}
	e, err := u.adm.Enroll(id, allowed, c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.render(w, r, c, http.StatusOK, "enrolled", "Enroll "+e.ID, enrolledData{ID: e.ID, Command: e.Command, Created: e.Created})
}

func (u *UI) rotateAgent(w http.ResponseWriter, r *http.Request, c *call) {
	a, err := u.adm.RotateAgentSecret(r.PathValue("id"), c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.render(w, r, c, http.StatusOK, "enrolled", "New secret for "+a.ID, enrolledData{ID: a.ID, Command: a.EnrollCommand, Secret: a.Secret})
}

func (u *UI) revokeAgent(w http.ResponseWriter, r *http.Request, c *call) {
	id := r.PathValue("id")
	if err := u.adm.DeleteAgent(id, c.p); err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.done(w, r, c, "/ui/agents", "Revoked agent "+id+": its session is cut and its secret no longer works.")
}

func (u *UI) forwards(w http.ResponseWriter, r *http.Request, c *call) {
	u.render(w, r, c, http.StatusOK, "forwards", "Forwards", struct {
		Items  []admin.ForwardOut
		Agents []admin.AgentOut
	}{u.adm.Forwards(), u.adm.Agents()})
}

func (u *UI) createForward(w http.ResponseWriter, r *http.Request, c *call) {
	f := model.Forward{Listen: strings.TrimSpace(r.PostFormValue("listen")), Agent: strings.TrimSpace(r.PostFormValue("agent")), Target: strings.TrimSpace(r.PostFormValue("target"))}
	if _, err := u.adm.CreateForward(f, c.p); err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.done(w, r, c, "/ui/forwards", "Forward "+f.Listen+" → "+f.Agent+" → "+f.Target+" created.")
}

func (u *UI) deleteForward(w http.ResponseWriter, r *http.Request, c *call) {
	listen := r.PostFormValue("listen")
	if err := u.adm.DeleteForward(listen, c.p); err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.done(w, r, c, "/ui/forwards", "Forward "+listen+" deleted.")
}

// --- sources and audit ---

type sourceRow struct {
	admin.SourceOut
	URL string
}

func (u *UI) sources(w http.ResponseWriter, r *http.Request, c *call) {
	var rows []sourceRow
	for _, s := range u.adm.Sources() {
		rows = append(rows, sourceRow{SourceOut: s, URL: u.cfg.IngestURL + "/in/" + url.PathEscape(s.Slug)})
	}
	u.render(w, r, c, http.StatusOK, "sources", "Sources", rows)
}

type auditData struct {
	F     url.Values
	Items []wal.AuditEntry
	Next  string
	First string
	Err   string
}

func (u *UI) audit(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	f := admin.AuditFilter{Action: q.Get("action"), ObjectType: q.Get("object_type"), ObjectID: q.Get("object_id"), ReplayID: q.Get("replay_id"), Actor: q.Get("actor")}
	d := auditData{F: q}
	var err error
	if f.Since, err = parseFormTime("since", q.Get("since")); err == nil {
		f.Until, err = parseFormTime("until", q.Get("until"))
	}
	status := http.StatusOK
	if err == nil {
		var page admin.Page[wal.AuditEntry]
		if page, err = u.adm.AuditLog(f, q.Get("cursor"), 100); err == nil {
			d.Items = page.Items
			if page.NextCursor != "" {
				d.Next = query(q, "cursor", page.NextCursor)
			}
			if q.Get("cursor") != "" {
				d.First = query(q, "cursor", "") + "#"
			}
		}
	}
	if err != nil {
		e := admin.ErrorOf(err)
		d.Err, status = e.Error(), e.Status
	}
	u.render(w, r, c, status, "audit", "Audit log", d)
}
