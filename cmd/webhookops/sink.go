package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v2"
)

// sinkCommand is a receiver for trying WebhookOps out: it prints every
// request it gets and answers with --status.
func sinkCommand() *cli.Command {
	return &cli.Command{
		Name:  "sink",
		Usage: "print the webhooks it receives (for trying a destination out)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:3000", Usage: "address to listen on"},
			&cli.IntFlag{Name: "status", Value: 200, Usage: "status code to answer with"},
		},
		Action: func(c *cli.Context) error {
			status := c.Int("status")
			if status < 100 || status > 599 {
				return fmt.Errorf("--status %d is not an HTTP status", status)
			}
			fmt.Fprintf(os.Stderr, "sink listening on http://%s, answering %d\n", c.String("addr"), status)
			srv := &http.Server{
				Addr:              c.String("addr"),
				ReadHeaderTimeout: 10 * time.Second,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
					fmt.Printf("--- %s %s %s\n", time.Now().Format(time.TimeOnly), r.Method, r.URL)
					names := make([]string, 0, len(r.Header))
					for k := range r.Header {
						names = append(names, k)
					}
					slices.Sort(names)
					for _, k := range names {
						for _, v := range r.Header[k] {
							fmt.Printf("%s: %s\n", k, v)
						}
					}
					fmt.Printf("\n%s\n", body)
					w.WriteHeader(status)
				}),
			}
			return srv.ListenAndServe()
		},
	}
}
