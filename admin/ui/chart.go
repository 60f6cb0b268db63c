package ui

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/webhookops/webhookops/admin"
)

// Chart geometry, in SVG user units.
const (
	chartW      = 720
	chartH      = 200
	chartLeft   = 48 // room for the y labels
	chartBottom = 20 // room for the x labels
	chartTop    = 8
	chartRight  = 8
)

// chart is a line chart of per-minute counts, laid out in Go so the page
// needs no script: the template draws the polylines and labels, and a
// table of the same numbers, hidden from view, serves screen readers.
type chart struct {
	W, H   int
	Series []series
	YTicks []tick
	XTicks []tick
	Rows   []admin.MinuteCounts // the table, oldest first
	Left   int
	Bottom int // y of the x axis
	Right  int // x of the right edge
}

type series struct {
	Name   string
	Class  string
	Points string // "x,y x,y ..."
	Total  int64
}

type tick struct {
	X, Y  int
	Label string
}

// niceMax rounds m up to 1, 2 or 5 times a power of ten, so the y axis
// reads in round numbers.
func niceMax(m int64) int64 {
	if m <= 0 {
		return 1
	}
	p := int64(1)
	for p*10 <= m {
		p *= 10
	}
	for _, f := range []int64{1, 2, 5, 10} {
		if f*p >= m {
			return f * p
		}
	}
	return 10 * p
}

// buildChart lays out mins (oldest first) as four series.
func buildChart(mins []admin.MinuteCounts) chart {
	c := chart{W: chartW, H: chartH, Rows: mins, Left: chartLeft, Bottom: chartH - chartBottom, Right: chartW - chartRight}
	defs := []struct {
		name, class string
		get         func(admin.MinuteCounts) int64
	}{
		{"received", "s-received", func(m admin.MinuteCounts) int64 { return m.Received }},
		{"delivered", "s-delivered", func(m admin.MinuteCounts) int64 { return m.Delivered }},
		{"failed", "s-failed", func(m admin.MinuteCounts) int64 { return m.Failed }},
		{"dead-lettered", "s-dead", func(m admin.MinuteCounts) int64 { return m.DeadLettered }},
	}
	var top int64
	for _, m := range mins {
		top = max(top, m.Received, m.Delivered, m.Failed, m.DeadLettered)
	}
	top = niceMax(top)
	plotW := float64(c.Right - c.Left)
	plotH := float64(c.Bottom - chartTop)
	x := func(i int) float64 {
		if len(mins) <= 1 {
			return float64(c.Left)
		}
		return float64(c.Left) + plotW*float64(i)/float64(len(mins)-1)
	}
	y := func(v int64) float64 { return float64(c.Bottom) - plotH*float64(v)/float64(top) }
	for _, d := range defs {
		var b strings.Builder
		var total int64
		for i, m := range mins {
			v := d.get(m)
			total += v
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(x(i), 'f', 1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(y(v), 'f', 1, 64))
		}
		c.Series = append(c.Series, series{Name: d.name, Class: d.class, Points: b.String(), Total: total})
	}
	for _, v := range []int64{0, top / 2, top} {
		c.YTicks = append(c.YTicks, tick{X: c.Left - 6, Y: int(y(v)), Label: commas(v)})
	}
	if n := len(mins); n > 0 {
		step := max(n/6, 1)
		for i := 0; i < n; i += step {
			c.XTicks = append(c.XTicks, tick{X: int(x(i)), Y: chartH - 4, Label: mins[i].Minute.UTC().Format("15:04")})
		}
	}
	return c
}

// dashboard is the dashboard page's data.
type dashboard struct {
	Hours        int
	HourChoices  []int
	Chart        chart
	Busy         []admin.DestinationOut
	BusyErr      string
	OpenCircuits int
	Paused       int
	Destinations int
	Agents       int
	AgentsOnline int
	Sources      int
	Now          time.Time
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, c *call) {
	hours := 3
	if h, err := strconv.Atoi(r.URL.Query().Get("hours")); err == nil && h >= 1 && h <= 24 {
		hours = h
	}
	d := dashboard{Hours: hours, HourChoices: []int{1, 3, 6, 12, 24}, Now: time.Now().UTC()}
	d.Chart = buildChart(u.adm.Minutes(hours * 60))
	ctx, cancel := pageCtx(r)
	defer cancel()
	busy, err := u.adm.BusyDestinations(ctx, 10)
	if err != nil {
		d.BusyErr = admin.ErrorOf(err).Message
	}
	d.Busy = busy
	for _, b := range busy {
		if b.Stats.CircuitOpen {
			d.OpenCircuits++
		}
	}
	dests := u.adm.Destinations()
	d.Destinations = len(dests)
	for _, x := range dests {
		if x.Paused {
			d.Paused++
		}
	}
	agents := u.adm.Agents()
	d.Agents = len(agents)
	for _, a := range agents {
		if a.Online {
			d.AgentsOnline++
		}
	}
	d.Sources = len(u.adm.Sources())
	u.render(w, r, c, http.StatusOK, "dashboard", "Dashboard", d)
}
