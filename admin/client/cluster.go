package client

import (
	"context"

	"github.com/webhookops/webhookops/admin/api"
)

// ClusterStatus reads the cluster as the server's node sees it.
func (c *Client) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	var s api.ClusterStatus
	return s, c.do(ctx, "GET", prefix+"/cluster", nil, nil, &s)
}
