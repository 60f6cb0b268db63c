package client

import (
	"context"
	"strconv"

	"github.com/webhookops/webhookops/admin/api"
)

// ClusterStatus reads the cluster as the server's node sees it.
func (c *Client) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	var s api.ClusterStatus
	return s, c.do(ctx, "GET", prefix+"/cluster", nil, nil, &s)
}

// AddClusterNode adds member id at addr (its raft address).
func (c *Client) AddClusterNode(ctx context.Context, id uint64, addr string) (api.ClusterStatus, error) {
	var s api.ClusterStatus
	return s, c.do(ctx, "POST", prefix+"/cluster/nodes", nil, api.ClusterNodeRequest{ID: id, Address: addr}, &s)
}

// RemoveClusterNode removes member id.
func (c *Client) RemoveClusterNode(ctx context.Context, id uint64) (api.ClusterStatus, error) {
	var s api.ClusterStatus
	return s, c.do(ctx, "DELETE", prefix+"/cluster/nodes/"+strconv.FormatUint(id, 10), nil, nil, &s)
}
