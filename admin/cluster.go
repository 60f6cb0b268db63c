package admin

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

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

// getCluster answers the cluster as this member sees it, with every
// member's applied index and lag per partition asked of the others
// (?local=true: this member's view alone, what members ask each other).
func (s *Server) getCluster(r *http.Request, _ httprouter.Params, p principal) (int, any, error) {
	if s.cfg.Cluster == nil {
		return 0, nil, errNotClustered()
	}
	st, err := s.cfg.Cluster(r.Context())
	if err != nil {
		return 0, nil, &Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable", Message: err.Error()}
	}
	if r.URL.Query().Get("local") != "true" && s.cfg.Peers != nil {
		s.addLag(r.Context(), &st, p.bearer)
	}
	return http.StatusOK, st, nil
}

// statusWait bounds how long a status waits for each other member.
const statusWait = time.Second

// addLag asks every other member for its partitions, at once, and fills
// in each partition's Applied; members that do not answer are listed in
// LagUnknown.
func (s *Server) addLag(ctx context.Context, st *api.ClusterStatus, bearer string) {
	views := map[uint64][]api.ClusterPartition{st.NodeID: st.Partitions}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range st.Nodes {
		if n.ID == st.NodeID {
			continue
		}
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, statusWait)
			defer cancel()
			var other api.ClusterStatus
			err := s.cfg.Peers.call(ctx, id, http.MethodGet, "/api/v1/cluster?local=true", bearer, nil, &other)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				st.LagUnknown = append(st.LagUnknown, id)
				return
			}
			views[id] = other.Partitions
		}(n.ID)
	}
	wg.Wait()
	slices.Sort(st.LagUnknown)
	applyLag(st.Partitions, views)
}

// applyLag sets each partition's Applied from the members' views of it
// (member id -> its partitions): each member's applied index, and how far
// it is behind the member furthest ahead.
func applyLag(parts []api.ClusterPartition, views map[uint64][]api.ClusterPartition) {
	for i := range parts {
		var reps []api.ReplicaApplied
		var top uint64
		for id, ps := range views {
			for _, p := range ps {
				if p.Partition == parts[i].Partition {
					reps = append(reps, api.ReplicaApplied{Node: id, AppliedIndex: p.AppliedIndex})
					top = max(top, p.AppliedIndex)
				}
			}
		}
		slices.SortFunc(reps, func(a, b api.ReplicaApplied) int { return cmp.Compare(a.Node, b.Node) })
		for j := range reps {
			reps[j].Lag = top - reps[j].AppliedIndex
		}
		parts[i].Applied = reps
	}
}

func (s *Server) membership() (Membership, error) {
	if s.cfg.Membership == nil {
		return nil, errNotClustered()
	}
	return s.cfg.Membership, nil
}

func membershipError(err error) error {
	if errors.Is(err, ErrMembershipRefused) {
		return errBadRequest("membership_refused", "", "%v", err)
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
		return 0, nil, errBadRequest("bad_request", "", "node id: a number above 0")
	}
	if err := m.RemoveNode(r.Context(), id); err != nil {
		return 0, nil, membershipError(err)
	}
	s.node.Audit(wal.AuditEntry{At: s.now(), Action: "cluster.node_removed", ObjectType: "node", ObjectID: ps.ByName("id"), Actor: p.actor()})
	return s.getCluster(r, nil, p)
}
