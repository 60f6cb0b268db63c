// Package admin owns the operator's side of a node: the admin HTTP API
// (httprouter, JSON, under /api/v1), its OpenAPI document, /metrics,
// /healthz and /readyz. Subpackage config reads the YAML config file.
//
// It must never return a secret in clear except in the answer that
// creates or rotates it, and never change state on a request it refuses.
package admin
