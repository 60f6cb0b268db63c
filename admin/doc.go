// Package admin owns the operator's side of a node: the admin HTTP API
// (httprouter, JSON, under /api/v1), its OpenAPI document, /metrics,
// /healthz and /readyz, replays and the token store. Subpackage api holds
// the wire types (requests, answers, the error shape), a leaf that links no
// storage or actor runtime; subpackage client is the typed HTTP client over
// them that the CLI (subpackage cli) uses; subpackage config reads the YAML
// config file; subpackage ui is the operator UI and API docs, mounted by
// MountUI, which call the same exported Server methods the JSON handlers
// call (ListEvents, Redrive, Enroll, ...).
//
// It must never return a secret in clear except in the answer that
// creates or rotates it, and never change state on a request it refuses.
//
// # Authentication
//
// Every route but /healthz and /readyz needs Authorization: Bearer <token>.
// Tokens are random ("whops_" + 43 base64url characters); the store keeps
// only their SHA-256 (wal.KindToken), and a presented token is hashed and
// compared with every stored hash in constant time. Two roles: "admin"
// does everything, "read" may GET anything and scrape /metrics (403 on
// writes). --admin-token (WEBHOOKOPS_ADMIN_TOKEN) adds an admin token named
// "bootstrap" held only in memory; without it, a node whose store holds no
// token creates one named "initial" on start and hands it out once
// (Server.InitialToken, printed by `webhookops serve`). Refusals answer 401
// (403 for a read-only token on a write) and are audited as auth.rejected,
// at most 20 a second (the next entry counts those left out), so a client
// hammering with a bad token cannot fill the disk.
// Tokens are managed through the API (GET/POST /tokens, DELETE
// /tokens/{name}); `webhookops token` uses it, or works on the data dir
// directly when the server is stopped (Pebble locks the dir while it runs).
//
// /metrics needs a token too (any role): Prometheus sends one with
// `authorization: {credentials: ...}` in its scrape config.
// --metrics-public serves it without one, for scrapers on a trusted network.
//
// # Resources
//
// Sources, destinations and agents use the config file's field names (the
// wal model types). POST creates (409 if the slug exists), PUT replaces
// (the slug in the body may be omitted, never changed), DELETE removes (409
// while something still refers to the object). Every change goes through
// actors.Node.Apply: validated, all or nothing, durable and audited with
// the token's name (actor "token:<name>") and a masked diff, effective at
// once. A failed request writes nothing, audit included.
//
// Secrets: a source's secrets, a destination's signing secret and an
// agent's secret are shown in clear only in the answer that creates or
// rotates them; reads show them masked. PUT may echo the masked values
// back (a GET-edit-PUT round trip) but cannot change them: rotation is
// POST /sources/{slug}/secrets (adds a secret, generated or the one the
// provider issued; the old one stays valid) and DELETE
// /sources/{slug}/secrets/{secret_id} (retires one; the last one cannot be
// removed). secret_id is a hash prefix that names a secret without
// revealing it. A destination's signing secret rotates with an overlap
// (POST /destinations/{slug}/signing-secret): for SigningSecretOverlap (24 h)
// deliveries carry two Standard Webhooks signatures, by the new and the
// previous secret, so a receiver verifies with either while it switches;
// the previous secret is never shown again. An agent's
// secret rotates in one step too, and the tunnel cuts the old session.
// Rotations are audited as secret.rotated / secret.revoked.
//
// # Agents and forwards
//
// POST /agents/{id}/enrollment is how an agent joins: it creates the agent
// (optional body {"allowed_targets": [...]}) or, if it exists, gives it a
// new secret (and the targets, when the body names them), and answers
// {"command", "tunnel", "id", "secret", "server_fingerprint",
// "allowed_targets", "created"}: command is the `agentd join` line to
// paste, with the tunnel's public address (--tunnel-public-addr), the
// certificate fingerprint agentd pins, the secret and an --allow per
// allowed target. POST /agents and POST /agents/{id}/secret go through the
// same code and carry the same line as enroll_command. A rotation cuts the
// agent's live session before the answer is written (Apply's OnChange
// reaches the tunnel synchronously), so a copied old secret stops working
// at once. Without a tunnel (no --tunnel-addr) enrollment answers 409
// naming the flag.
//
// GET/POST /forwards and GET/DELETE /forwards/{listen} manage raw TCP
// forwards: connections accepted on listen (host:port) go through agent to
// target. {listen} is the address URL-escaped (IPv6 brackets as %5B and
// %5D). A create is refused, naming the field, when the agent does not
// allow the target (the tunnel would refuse every connection) or the
// address cannot be listened on; it needs the tunnel, like enrollment.
//
// Request bodies: at most 1 MiB of one JSON object; unknown fields are
// refused (400 unknown_field naming the field), as are wrong types and
// malformed values (400 invalid_field naming the field). Every error has
// one shape: {"error": {"code", "message", "field"}}.
//
// # Events, replays, dead letters
//
// Lists answer {"items": [...], "next_cursor": "..."}, newest first;
// next_cursor is empty on the last page. An event list cursor is an event
// sequence: sequences are never reused and new events sort before the
// cursor, so paging never skips or repeats an event while new ones arrive.
// Filters: source, destination, status (the event's, or its status at
// destination when that is given), event_type (exact or a "x.*" pattern),
// since/until (RFC 3339, received_at), idempotency_key.
//
// A replay (one event, POST /events/{id}/replay; bulk by the event list's
// filters, POST /replays; a dead-letter redrive, POST
// /destinations/{slug}/dead-letters/redrive) is recorded durably with a
// replay.requested audit entry before the request is answered (202), then
// runs in the engine (actors.Node.StartReplay; this package only checks
// the request): the matching events are collected oldest first, so an
// ordered destination sees them in their original order, and each (event,
// destination) pair is sent once. Total counts those pairs; the replay is
// "completed" when every pair is delivered or dead-lettered (a pair whose
// destination is deleted counts as failed), with a replay.completed audit
// entry. A bulk replay with no filter needs "all": true. Progress is saved
// every second; a replay interrupted by a restart reads as "failed" with
// the reason (its queued deliveries still run).
//
// # Per-minute counts
//
// GET /stats/minutes?minutes=N (default 60, at most 1440) answers events
// received, delivered, failed and dead-lettered in each of the last N
// minutes. The node keeps running totals (actors.Metrics.Totals); a
// sampler adds their change to the current minute every second, into a
// day-long ring saved under wal.KindRollup once a minute and on Close. A
// restart keeps the history; a crash loses at most the last minute.
//
// # Metrics
//
// Besides the node's counters and histograms (events received by source
// and outcome, attempts by destination and outcome, attempt latency,
// ingest-to-delivered latency, dead-lettered, signature rejections),
// /metrics reports state, read at scrape time and reused for 5 s since the
// counts are scans: webhookops_queue_depth and webhookops_dead_letters per
// destination, webhookops_destination_paused, webhookops_agents,
// webhookops_agents_online and webhookops_replays_active.
package admin
