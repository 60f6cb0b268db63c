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
// Headers are kept as received, value order preserved per name; net/http
// does not keep the order of distinct names, so they are stored sorted by
// name, which is stable across retries and replays.
//
// It must never answer 2xx for an event that is not durable, and never
// store anything for a request it refused.
package ingress
