package main

import (
	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin"
	admincli "github.com/webhookops/webhookops/admin/cli"
)

// clientCommands are the operator commands that talk to the admin API
// (package admin/cli holds them; this binary also lets `token --data-dir`
// open a stopped server's store). main runs os.Args through
// admincli.PermuteArgs so their flags may follow their arguments.
func clientCommands() []*cli.Command { return admincli.Commands(admin.OfflineTokens{}) }
