package main

// Blank imports pin the project's chosen dependencies in go.mod while the
// packages that use them are being written. Removed once each is used.
import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/asynkron/protoactor-go/actor"
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/cockroachdb/pebble/v2/bloom"
	_ "github.com/cockroachdb/pebble/v2/vfs"
	_ "github.com/getkin/kin-openapi/openapi3"
	_ "github.com/goccy/go-yaml"
	_ "github.com/julienschmidt/httprouter"
	_ "github.com/lmittmann/tint"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/quic-go/quic-go"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/urfave/cli/v2"
	_ "go.uber.org/goleak"
)

func main() {}
