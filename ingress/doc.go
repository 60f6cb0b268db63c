// Package ingress owns the ingest HTTP endpoint, POST /in/{source}: it
// reads the body under a size limit, verifies the provider's signature
// (package verify), extracts the idempotency key and event type, and hands
// the event to the node, answering only once it is durable.
//
// Answers: 202 {"event_id", "duplicate": false} after the synced commit;
// 200 with the first event's id and "duplicate": true for a redelivery;
// 401 with the reason for a missing or wrong signature (audited, nothing
// stored); 404 for an unknown or disabled source; 413 over the body limit;
// 503 when storage fails or the node is not ready.
//
// # Memory under hostile load
//
// Nothing is allocated for what a sender only declares. A body buffer
// starts at most 16 KiB and doubles as bytes arrive, never past the
// declared Content-Length (+1) or the body limit. Every byte of body
// buffer is taken from one budget shared by all requests
// (Config.MaxInFlight, --max-inflight-bytes, 64 MiB by default) before it
// is allocated; a request that finds no room is answered 503 with
// Retry-After: 1 and its connection closed, never queued. The listener
// (LimitListener, --max-connections, 4096 by default) refuses connections
// over its cap at once, with a 503 on plain HTTP, instead of leaving them
// in the kernel's backlog. Headers are capped at 64 KiB. So ingest's heap
// is bounded by the budget plus net/http's per-connection state times the
// connection cap (about 14 KiB each, measured: see limits_test.go).
//
// Headers are kept as received, value order preserved per name; net/http
// does not keep the order of distinct names, so they are stored sorted by
// name, which is stable across retries and replays.
//
// It must never answer 2xx for an event that is not durable, and never
// store anything for a request it refused.
package ingress
