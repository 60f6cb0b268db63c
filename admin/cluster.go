package admin

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

func (s *Server) getCluster(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	if s.cfg.Cluster == nil {
		return 0, nil, &Error{Status: http.StatusNotFound, Code: "not_clustered", Message: "this node runs alone (no --cluster-addr)"}
	}
	st, err := s.cfg.Cluster(r.Context())
	if err != nil {
		return 0, nil, &Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable", Message: err.Error()}
	}
	return http.StatusOK, st, nil
}
