// Package ui is the operator UI: server-rendered pages under /ui/ on the
// admin listener, and the interactive API docs (Swagger UI) under
// /api/docs/. admin.Server.MountUI mounts it on the admin router.
//
// # How it is built
//
// html/template pages and plain forms; one small script (static/ui.js) for
// what a page cannot do alone: "/" to focus search, copy buttons, the
// confirm <dialog> of destructive forms, choose-all boxes and the event
// list's live tail. Every page works without it (a form then submits
// without asking). Charts are SVG laid out in Go (chart.go) with a
// visually hidden table of the same numbers for screen readers. Templates,
// styles, the script and Swagger UI (github.com/swaggo/files/v2) are
// embedded: no build step, and the docs work offline.
//
// Every page calls the exported methods of admin.Server, the same ones
// the JSON handlers call (ListEvents, Event, Redrive, Enroll, ...), so a
// page can neither do more than the API nor skip its checks and audit.
//
// # Sessions and security
//
// POST /ui/login exchanges an API token for a session: a random cookie
// (webhookops_session; HttpOnly, SameSite=Strict, Path=/, Secure when the
// request came over TLS) naming a session held in memory. The token stays
// server-side and is checked with admin.Server.Authenticate on every
// request, so revoking it ends its sessions at once. Sessions last at most
// Config.SessionTTL (12 h) and end after Config.IdleTimeout (1 h) unused;
// logout ends one; a restart ends all (they are in memory, by choice: a
// signed cookie could not be logged out). A read-only token gets the same
// pages without write buttons, and its POSTs answer 403. Failed logins are
// audited as auth.rejected like a bad bearer token and slowed down by the
// same rule (admin.LoginLimiter): after 5 from one address within 15 min,
// that address waits 1 s, doubling per failure, at most 5 min. Logins and
// logouts are audited (ui.login, ui.logout).
//
// Every request passes http.CrossOriginProtection (a cross-site POST,
// judged by Sec-Fetch-Site or Origin, is refused with 403 before any
// handler runs; login included). Pages carry Content-Security-Policy
// default-src 'self' (no inline script or style anywhere), frame-ancestors
// 'none', nosniff and no-store. Bodies, headers, keys and event types are
// whatever a sender posted: templates render them as text, the body is
// capped at 64 KB on screen, and the raw body is only ever a download
// (application/octet-stream, attachment). The docs pages relax style-src
// and img-src (Swagger UI sets element styles and uses data: icons);
// scripts stay 'self' there too.
//
// # Dashboard counts
//
// The traffic chart reads admin.Server.Minutes: per-minute counters of
// events received, delivered, failed and dead-lettered, kept by the admin
// package from the node's running totals (never by scanning events) and
// saved with the store each minute, so they survive a restart and a crash
// loses at most the last minute.
//
// # Lists
//
// The event list pages by keyset (50 a page, the API's cursor). Its first
// page counts the matches by looking at no more than 10,000 events (1,000
// with a status filter): past that it reads "10,000+". Without a filter
// the count reads keys only. Filters the event record answers (source,
// type, key, time) cost one decode per event scanned; status filters also
// read the delivery records, so a rare status over millions of events
// scans longer (BenchmarkPages: a 1% status takes a few hundred ms, where
// a destination's dead-letter page, read from its index, takes
// milliseconds).
//
// # What it must never do
//
// Reach the engine or the store around admin.Server; render anything a
// sender wrote as markup; show a secret except on the answer that creates
// or rotates it (never kept in the session); change state on a GET.
package ui
