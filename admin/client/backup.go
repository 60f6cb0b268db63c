package client

import (
	"context"
	"io"
	"net/http"
)

// Backup asks the node for a consistent online backup and returns the
// stream: a tar in the format of package admin/backup, which
// backup.Extract unpacks and checks. The caller closes it. Only ctx bounds
// it: a large store takes a while to stream.
func (c *Client) Backup(ctx context.Context, includeSecretKey bool) (io.ReadCloser, error) {
	u := c.base.JoinPath(prefix, "backup")
	if includeSecretKey {
		u.RawQuery = "include_secret_key=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: c.hc.Transport, CheckRedirect: c.hc.CheckRedirect}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.sendError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, apiError(resp.StatusCode, raw)
	}
	return resp.Body, nil
}
