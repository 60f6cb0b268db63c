package admin

import (
	"log/slog"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/webhookops/webhookops/actors"
)

// Config configures the admin server.
type Config struct {
	Node   *actors.Node
	Logger *slog.Logger
}

// Server is the admin HTTP handler.
type Server struct {
	cfg    Config
	router *httprouter.Router
	reg    *prometheus.Registry
}

// New builds the admin handler and registers the node's metrics.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, router: httprouter.New(), reg: prometheus.NewRegistry()}
	if err := cfg.Node.Metrics().Register(s.reg); err != nil {
		return nil, err
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.router.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		w.Write([]byte("ok\n"))
	})
	s.router.GET("/readyz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		if !cfg.Node.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.router.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }
