// Package verify authenticates inbound webhook requests and derives the two
// facts the ingest path needs from them: an idempotency key and an event type.
//
// It owns, for each supported provider ("generic", "github", "shopify",
// "slack", "stripe", "standard-webhooks"):
//
//   - the signature scheme: which headers carry the signature and timestamp,
//     what bytes are signed, and how the signature is encoded;
//   - the replay window: timestamped schemes reject a timestamp more than
//     [MaxSkew] away from the injected clock, in either direction;
//   - the idempotency key and event type extraction ([Extract]);
//   - event-type route patterns ([MatchEventType]);
//   - signing helpers ([SignGeneric] and friends) for tests and the load
//     generator, so that senders and the verifier agree by construction.
//
// Everything here is a pure function of its arguments: no I/O, no logging, no
// global configuration, no clock (time is passed in), and no dependency on the
// rest of WebhookOps.
//
// # What this package must never do
//
//   - Never log, return, or put in an error any secret material. An [*Error]
//     carries a stable Reason code and a fixed human message; it never echoes
//     a secret, a computed MAC, or the request's signature header back, so it
//     is safe to send to the caller in a 401 and to write to the audit log.
//   - Never read more than the body it is given. The caller bounds the body
//     (413) before calling; this package only hashes and parses that slice.
//   - Never compare MACs in variable time: every comparison is [hmac.Equal].
//   - Never panic, whatever the headers or body hold.
//
// # Signature schemes
//
//	generic  X-Webhookops-Signature: sha256=<hex HMAC-SHA256(secret, body)>
//	standard-webhooks  webhook-id, webhook-timestamp and
//	         webhook-signature: "v1,<base64 HMAC-SHA256(key, id.ts.body)>" ...
//	github   X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//	shopify  X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>
//	slack    X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:"+ts+":"+body)>
//	         X-Slack-Request-Timestamp: <unix seconds>
//	stripe   Stripe-Signature: t=<unix>,v1=<hex>,v1=<hex>,...
//	         over t+"."+body; schemes other than v1 (v0) are ignored.
//
// Decisions worth knowing:
//
//   - Several secrets may be active at once (rotation). A request verifies if
//     any one of them produces a matching signature. A zero-length secret is
//     ignored: an empty HMAC key is one anybody can sign with. If no usable
//     secret remains, Verify fails with Reason "no_secrets".
//   - A source verifies exactly one scheme, named by its provider. "generic"
//     is the plain scheme only and "standard-webhooks" the Standard Webhooks
//     scheme only (its timestamp is checked). Before, generic accepted both
//     with one key, and since the plain scheme signs the bare body, a
//     captured Standard Webhooks request was also a valid plain request over
//     the body "id.ts.body", with no timestamp check. A Standard Webhooks
//     secret written as "whsec_<base64>" is base64-decoded to form the key;
//     any other secret (or one whose base64 does not decode) is used as raw
//     bytes.
//   - Only the first value of each header is considered.
//   - Multiple signatures in one header (Stripe v1 list, Standard Webhooks
//     list) are accepted up to 16 per request; entries that are malformed or
//     of an unknown version are skipped, and if none is usable the reason is
//     "malformed_signature".
//   - Checks run cheapest first: header presence and syntax, timestamp, and
//     only then the HMACs. A stale request that also has a bad signature is
//     therefore reported as "timestamp_skew".
//   - Timestamps are decimal Unix seconds; the signed bytes use the header
//     value exactly as received.
//
// # Idempotency keys and event types
//
// See [Extract]. Keys are bounded: a provider-supplied key that is empty,
// longer than [MaxKeyLen] bytes, not valid UTF-8 or containing control
// characters is replaced by "sha256:<hex of SHA-256(body)>", which is also the
// key when the provider's field is missing. Two identical bodies without a
// provider key are therefore the same event inside the dedupe window. JSON
// bodies are decoded with encoding/json into structs holding only the needed
// top-level fields; note that encoding/json matches field names
// case-insensitively.
//
// # Replays of captured requests
//
// GitHub, Shopify and the plain generic scheme sign the body only: their id
// header (X-GitHub-Delivery, X-Shopify-Webhook-Id, X-Webhook-Id) is not
// covered, so a captured request sent again with a new id would be a new
// event. A source that dedupes on the body (model.DedupeBody: the default
// for github and shopify, a setting for generic) uses [BodyKey] instead:
// SHA-256 of the raw event type header and the body. Shopify sends
// byte-identical bodies for different topics of one order; the topic in
// the key keeps them apart.
//
// What remains:
//   - The event type header is not signed either, so a captured body can be
//     sent again once under each other event type (each is a new key). Route
//     filters on event type see the forged type.
//   - Dedupe lasts the dedupe window (72 h by default). After it, a captured
//     request of an untimestamped scheme (generic, github, shopify) is
//     accepted again. Timestamped schemes (slack, stripe, standard-webhooks)
//     refuse it after [MaxSkew] anyway.
//   - Two distinct events with the same type and byte-identical body are one
//     event on a body-deduped source. A generic sender that can send those
//     keeps dedupe: id (the default for generic).
//   - Stripe and Slack put the event id in the signed body, and Standard
//     Webhooks signs webhook-id: their ids cannot be changed, and they dedupe
//     on the id.
//
// Event reads in the admin API mask the signature headers ([SignatureHeader]).
//
// # Event-type patterns
//
// See [MatchEventType]: no patterns match everything, "*" matches
// everything, "issues.*" matches "issues" and every type starting with
// "issues.", "orders/*" likewise for Shopify-style topics, and any other
// pattern matches only itself, case-sensitively.
//
// # Cost
//
// The verification hot path does not allocate: HMAC-SHA256 is computed with
// pooled SHA-256 states (the construction of RFC 2104, checked against
// crypto/hmac by the tests and the fuzz targets) and signatures are decoded
// into fixed-size arrays. Only failures allocate, to build their [*Error].
package verify
