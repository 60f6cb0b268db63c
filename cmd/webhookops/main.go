// Command webhookops is the WebhookOps server and its operator CLI.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	admincli "github.com/webhookops/webhookops/admin/cli"
	"github.com/webhookops/webhookops/bench"
	"github.com/webhookops/webhookops/cmd/internal/completion"
)

func main() {
	if err := newApp().Run(admincli.PermuteArgs(os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "webhookops:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "webhookops",
		Usage:   "receive, verify, store and deliver webhooks",
		Version: version,
		// Shell completion asks the program for candidates; see
		// `webhookops completion`.
		EnableBashCompletion: true,
		Commands: append([]*cli.Command{
			serveCommand(),
			sinkCommand(),
			clusterCommand(),
			backupCommand(),
			restoreCommand(),
			bench.Command(),
			versionCommand(),
			healthCommand(),
			completion.Command(),
		}, clientCommands()...),
	}
}
