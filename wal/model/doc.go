// Package model holds WebhookOps' domain types (sources, routes,
// destinations, agents, forwards), their defaults, validation and typed
// enums (provider, ordering, mode, verify).
//
// It is the leaf of the import graph: storage (wal), the engine (actors),
// the HTTP layers and the API client all share these types, so this
// package must never import Pebble, protoactor, quic-go or any other
// package of this module. A test pins that.
//
// Validation here checks one object on its own; cross references (a route
// naming a destination that exists, an agent destination naming a known
// agent) are checked by whoever holds the whole configuration.
package model
