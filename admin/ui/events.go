package ui

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/wal/model"
)

// bodyCap is how much of a body the event page shows; the rest is a
// download.
const bodyCap = 64 << 10

// eventFilterFrom reads the event list's filter from a query or form:
// the same fields as GET /api/v1/events. q is the search box: an event id
// opens that event, anything else is an idempotency key.
func eventFilterFrom(v url.Values) (admin.EventFilter, error) {
	f := admin.EventFilter{
		Source:         strings.TrimSpace(v.Get("source")),
		Destination:    strings.TrimSpace(v.Get("destination")),
		Status:         model.EventStatus(strings.TrimSpace(v.Get("status"))),
		EventType:      strings.TrimSpace(v.Get("event_type")),
		IdempotencyKey: strings.TrimSpace(v.Get("idempotency_key")),
	}
	if q := strings.TrimSpace(v.Get("q")); q != "" && f.IdempotencyKey == "" {
		f.IdempotencyKey = q
	}
	var err error
	if f.Since, err = parseFormTime("since", v.Get("since")); err != nil {
		return f, err
	}
	if f.Until, err = parseFormTime("until", v.Get("until")); err != nil {
		return f, err
	}
	return f, nil
}

type eventsData struct {
	Filter       admin.EventFilter
	Q            string
	Items        []admin.EventOut
	Count        admin.EventCount
	Counted      bool   // the first page shows the count
	Next         string // query string of the next page; "" at the end
	Short        bool   // the page stopped looking before it was full
	First        string // query string of the first page; "" on it
	Sources      []string
	Destinations []string
	Statuses     []model.EventStatus
	Filtered     bool
	Err          string
}

func (u *UI) events(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if id := strings.TrimSpace(q.Get("q")); strings.HasPrefix(id, "evt_") {
		http.Redirect(w, r, "/ui/events/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	d := eventsData{Q: q.Get("q"), Statuses: []model.EventStatus{admin.EventPending, admin.EventDelivered, admin.EventDeadLettered, admin.EventNoDestinations}}
	for _, s := range u.adm.Sources() {
		d.Sources = append(d.Sources, s.Slug)
	}
	for _, x := range u.adm.Destinations() {
		d.Destinations = append(d.Destinations, x.Slug)
	}
	f, err := eventFilterFrom(q)
	d.Filter = f
	d.Filtered = f != (admin.EventFilter{})
	status := http.StatusOK
	if err == nil {
		var page admin.Page[admin.EventOut]
		page, err = u.adm.ListEvents(f, q.Get("cursor"), pageSize)
		if err == nil {
			d.Items = page.Items
			if page.NextCursor != "" {
				d.Next = query(q, "cursor", page.NextCursor)
				d.Short = len(page.Items) < pageSize
			}
			if q.Get("cursor") != "" {
				d.First = query(q, "cursor", "")
				if d.First == "" {
					d.First = "?"
				}
			}
			if q.Get("cursor") == "" { // the count is the first page's
				d.Count, err = u.adm.CountEvents(f, countLimit)
				d.Counted = true
			}
		}
	}
	if err != nil {
		e := admin.ErrorOf(err)
		d.Err, status = e.Error(), e.Status
	}
	if q.Get("rows") == "1" { // the live tail asks for the rows alone
		u.render(w, r, c, status, "event-rows", "", d)
		return
	}
	u.render(w, r, c, status, "events", "Events", d)
}

type eventData struct {
	Ev        admin.EventOut
	Body      string // what the page shows, at most bodyCap
	Truncated bool
	Binary    bool
	Pretty    bool // Body is re-indented JSON
}

func (u *UI) event(w http.ResponseWriter, r *http.Request, c *call) {
	ev, err := u.adm.Event(r.PathValue("id"))
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	d := eventData{Ev: ev, Binary: ev.BodyEncoding == "base64"}
	if !d.Binary {
		body := ev.Body
		if len(body) <= bodyCap && json.Valid([]byte(body)) {
			var b bytes.Buffer
			if json.Indent(&b, []byte(body), "", "  ") == nil && b.Len() <= bodyCap {
				body, d.Pretty = b.String(), true
			}
		}
		if len(body) > bodyCap {
			cut := bodyCap
			for cut > 0 && !utf8.RuneStart(body[cut]) {
				cut--
			}
			body, d.Truncated = body[:cut], true
		}
		d.Body = body
	}
	u.render(w, r, c, http.StatusOK, "event", ev.ID, d)
}

// eventBody answers the raw body as a download, never as a page: a body
// is whatever a sender posted, HTML and script included.
func (u *UI) eventBody(w http.ResponseWriter, r *http.Request, c *call) {
	ev, err := u.adm.Event(r.PathValue("id"))
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	body := []byte(ev.Body)
	if ev.BodyEncoding == "base64" {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			u.fail(w, r, c, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+ev.ID+`.body"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func (u *UI) replayEvent(w http.ResponseWriter, r *http.Request, c *call) {
	id := r.PathValue("id")
	rec, err := u.adm.ReplayEvent(id, admin.EventReplayRequest{Destination: r.PostFormValue("destination"), Reason: r.PostFormValue("reason")}, c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	to := "all its destinations"
	if rec.Destination != "" {
		to = rec.Destination
	}
	u.done(w, r, c, "/ui/events/"+url.PathEscape(id), "Replay "+rec.ID+" queued to "+to+".")
}

// startReplay is the bulk replay of the event list's filter.
func (u *UI) startReplay(w http.ResponseWriter, r *http.Request, c *call) {
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, c, &admin.Error{Status: http.StatusBadRequest, Code: "bad_body", Message: err.Error()})
		return
	}
	f, err := eventFilterFrom(r.PostForm)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	rec, err := u.adm.StartReplay(admin.ReplayRequest{EventFilter: f, Reason: r.PostForm.Get("reason"), All: r.PostForm.Get("all") == "true"}, c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.done(w, r, c, "/ui/replays/"+url.PathEscape(rec.ID), "Replay "+rec.ID+" started.")
}

type replaysData struct {
	Items []admin.Replay
	Next  string
}

func (u *UI) replays(w http.ResponseWriter, r *http.Request, c *call) {
	page, err := u.adm.Replays(r.URL.Query().Get("cursor"), pageSize, c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	d := replaysData{Items: page.Items}
	if page.NextCursor != "" {
		d.Next = "?cursor=" + url.QueryEscape(page.NextCursor)
	}
	u.render(w, r, c, http.StatusOK, "replays", "Replays", d)
}

type replayData struct {
	Rec  admin.Replay
	Done int
}

// refresh reloads the page every two seconds while the replay runs.
func (d replayData) refresh() int {
	if d.Rec.Status == admin.ReplayQueued || d.Rec.Status == admin.ReplayRunning {
		return 2
	}
	return 0
}

func (u *UI) replay(w http.ResponseWriter, r *http.Request, c *call) {
	rec, err := u.adm.Replay(r.PathValue("id"), c.p)
	if err != nil {
		u.fail(w, r, c, err)
		return
	}
	u.render(w, r, c, http.StatusOK, "replay", rec.ID, replayData{Rec: rec, Done: rec.Succeeded + rec.Failed})
}
