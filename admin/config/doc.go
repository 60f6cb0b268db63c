// Package config reads the file given to `webhookops serve --config FILE`:
// sources, destinations, agents and forwards in YAML, the same shapes the
// admin API takes (the wal model types and their yaml tags).
//
//	f, err := config.LoadWith(path, known) // known: what the API created
//	if err != nil {
//		return err // "config.yaml:14:5: destinations[0].timeout: invalid duration "15" (...)"
//	}
//	// apply f.Sources, f.Destinations, ... all or nothing
//
// The package only reads and validates. It never applies anything, opens
// no storage and no network connection, and returns either a File that is
// valid as a whole or an error: the caller applies all of it or none.
//
// # Errors
//
// Every problem is an *Error naming the file, the line and column, and the
// field path (destinations[1].max_in_flight). A field error points at the
// field's key; a list item's error at the item; a missing required field at
// the item it is missing from. Several problems come back together as an
// ErrorList in file order, capped at 20. Decoding problems (syntax, unknown
// fields, wrong types) are reported alone: validation runs only on a file
// that decoded, so its messages are never consequences of a decoding one.
//
// # Strictness
//
//   - Unknown fields are rejected, with a suggestion when the key is close
//     to a real one (max_inflight: did you mean max_in_flight?); only
//     top-level keys starting with "x-" are ignored (see below).
//   - Types are not coerced. A number or boolean where a string belongs is
//     an error that says how to quote it: goccy's decoder turns
//     secrets: [0123, 0x1F] into "83" and "31", and a secret that silently
//     changes is worse than an error.
//     Durations need a unit ("15s"); a bare 15 is rejected.
//   - A file holds one YAML document; an empty file, or one with only
//     comments, is a valid empty config. A UTF-8 byte order mark is
//     dropped; other invalid UTF-8 is rejected.
//   - Items are checked with their own Validate, and destinations again
//     with defaults applied (backoff_max: 1s alone is rejected, because
//     the default backoff_base of 5s would exceed it).
//   - Slugs, agent ids and forward listen addresses are unique; one source
//     routes to a destination at most once; routes, agent-mode destinations
//     and forwards must name things declared in the file, or known to the
//     server through the Known function of ParseWith, LoadWith and
//     File.Validate. The agent's allowed_targets are not matched against
//     forward targets here: their matching rules belong to the tunnel.
//   - The returned File holds values as written; zero fields mean default
//     (model.Destination.WithDefaults).
//
// Anchors, aliases and << merge keys work as in any YAML file, so
// destinations can share settings. Top-level keys starting with "x-" are
// ignored, as in Compose files, to give shared settings a home:
//
//	x-defaults: &defaults {timeout: 30s, max_attempts: 12}
//	destinations:
//	  - {<<: *defaults, slug: billing, url: https://billing.example.com/in}
//
// # How it decodes
//
// goccy/go-yaml lexes and parses the text into an AST with positions; this
// package then fills the Go values itself, guided by the yaml tags of the
// model types. goccy's own decoder would do the filling but loses the
// position of errors from UnmarshalText (every model.Duration), names unknown
// fields without their path and in map order, and coerces numbers into
// strings ("0123" becomes "83"). A field type the walker cannot fill is a
// test failure (TestModelFieldsDecodable), not a runtime surprise.
//
// # Limits
//
// No input makes the loader panic or run away: files over 32 MiB are
// rejected before parsing; nesting beyond 32 levels and chains of tags are
// rejected on the tokens, before goccy's parser, whose time grows with the
// square of the nesting depth; alias and merge expansion is capped at
// 262,144 decoded values or one per two bytes of the file, whichever is
// more (so 100,000 plain destinations, about 8 MiB, load); and a panic inside goccy becomes an error. The
// parser's time also grows faster than linearly with the number of items:
// thousands of items load in milliseconds, 100,000 destinations (8 MiB) in
// about 4 s. Config files are written by operators, so this is acceptable;
// do not feed this loader untrusted uploads without a smaller size limit.
package config
