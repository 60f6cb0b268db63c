// Package api holds the admin API's wire types: what its requests carry
// and its answers hold, and the one error shape. The server (package
// admin) answers with them; package admin/client and the CLI decode them.
//
// It is a leaf beside wal/model: it imports the model and the standard
// library only, so a client links neither storage (Pebble), the actor
// runtime (protoactor) nor QUIC. A test in admin/client pins that for the
// client and the CLI. Where the API shows a domain object as it is (a
// source, a replay, an event filter) the type is the model's, with what
// only the API adds (masked secrets, queue figures, online state) beside
// it.
package api
