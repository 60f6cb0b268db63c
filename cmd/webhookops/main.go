// Command webhookops is the WebhookOps server and its operator CLI.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	admincli "github.com/webhookops/webhookops/admin/cli"
	"github.com/webhookops/webhookops/bench"
)

var version = "dev"

func main() {
	app := &cli.App{
		Name:    "webhookops",
		Usage:   "receive, verify, store and deliver webhooks",
		Version: version,
		Commands: append([]*cli.Command{
			serveCommand(),
			sinkCommand(),
			clusterCommand(),
			backupCommand(),
			restoreCommand(),
			bench.Command(),
		}, clientCommands()...),
	}
	if err := app.Run(admincli.PermuteArgs(os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "webhookops:", err)
		os.Exit(1)
	}
}
