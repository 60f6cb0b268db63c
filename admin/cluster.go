package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal"
)

// Membership changes a cluster's members (actors/cluster.Cluster).
type Membership interface {
	AddNode(ctx context.Context, id uint64, addr string) error
	RemoveNode(ctx context.Context, id uint64) error
}

// ErrMembershipRefused marks a membership change refused as asked (400);
// other failures (no quorum, timeouts) answer 503.
var ErrMembershipRefused = errors.New("admin: membership change refused")

// errNotClustered answers a cluster request on a single node.
func errNotClustered() error {
	return &Error{Status: http.StatusNotFound, Code: "not_clustered", Message: "this node runs alone (no --cluster-addr)"}
}

func (s *Server) getCluster(r *http.Request, _ httprouter.Params, _ principal) (int, any, error) {
	if s.cfg.Cluster == nil {
		return 0, nil, errNotClustered()
	}
	st, err := s.cfg.Cluster(r.Context())
	if err != nil {
		return 0, nil, &Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable", Message: err.Error()}
	}
	return http.StatusOK, st, nil
}

func (s *Server) membership() (Membership, error) {
	if s.cfg.Membership == nil {
		return nil, errNotClustered()
	}
	return s.cfg.Membership, nil
}

func membershipError(err error) error {
	if errors.Is(err, ErrMembershipRefused) {
		return &Error{Status: http.StatusBadRequest, Code: "membership_refused", Message: err.Error()}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable", Message: err.Error()}
}

func (s *Server) addClusterNode(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	m, err := s.membership()
	if err != nil {
		return 0, nil, err
	}
	var req api.ClusterNodeRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if req.ID == 0 {
		return 0, nil, errBadRequest("validation_failed", "id", "a node id above 0 is required")
	}
	if req.Address == "" {
		return 0, nil, errBadRequest("validation_failed", "address", "the new member's raft address (host:port) is required")
	}
	if err := m.AddNode(r.Context(), req.ID, req.Address); err != nil {
		return 0, nil, membershipError(err)
	}
	s.node.Audit(wal.AuditEntry{At: s.now(), Action: "cluster.node_added", ObjectType: "node", ObjectID: strconv.FormatUint(req.ID, 10),
		Actor: p.actor(), Detail: map[string]string{"address": req.Address}})
	return s.getCluster(r, nil, p)
}

func (s *Server) removeClusterNode(r *http.Request, ps httprouter.Params, p principal) (int, any, error) {
	m, err := s.membership()
	if err != nil {
		return 0, nil, err
	}
	id, err := strconv.ParseUint(ps.ByName("id"), 10, 64)
	if err != nil || id == 0 {
		return 0, nil, &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "node id: a number above 0"}
	}
	if err := m.RemoveNode(r.Context(), id); err != nil {
		return 0, nil, membershipError(err)
	}
	s.node.Audit(wal.AuditEntry{At: s.now(), Action: "cluster.node_removed", ObjectType: "node", ObjectID: ps.ByName("id"), Actor: p.actor()})
	return s.getCluster(r, nil, p)
}
