package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/urfave/cli/v2"
)

// healthCommand probes a node's /readyz, for container health checks and
// exec probes: a scratch image has no curl, but it has this binary.
func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "exit 0 if the node's /readyz answers 200 (for container health checks)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Usage: "readiness URL (default: /readyz on WEBHOOKOPS_ADMIN_ADDR, else 127.0.0.1:8081)"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "give up after this long"},
		},
		Action: runHealth,
	}
}

func runHealth(c *cli.Context) error {
	url := c.String("url")
	if url == "" {
		url = "http://" + localAddr(os.Getenv("WEBHOOKOPS_ADMIN_ADDR"), "127.0.0.1:8081") + "/readyz"
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return cli.Exit(fmt.Sprintf("health: %v", err), 2)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cli.Exit(fmt.Sprintf("health: %v", err), 1)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cli.Exit(fmt.Sprintf("health: %s answered %s", url, resp.Status), 1)
	}
	return nil
}

// localAddr turns a listen address into one this host can dial: an empty
// or unspecified host becomes 127.0.0.1; "" is def.
func localAddr(listen, def string) string {
	if listen == "" {
		return def
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
