package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/admin/client"
)

// ClusterStatusCommand is `webhookops cluster status`; the server binary
// puts it under its `cluster` command beside the certificate commands.
func ClusterStatusCommand() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "members, their reachability, and each partition's replicas, leader and owner",
		Flags:  commonFlags(),
		Action: action(runClusterStatus),
	}
}

// ClusterNodeCommands are `webhookops cluster add-node` and `remove-node`.
func ClusterNodeCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:  "add-node",
			Usage: "add a member (a replacement for a removed one takes a new id); then start it with serve --join",
			Flags: commonFlags(
				&cli.Uint64Flag{Name: "id", Required: true, Usage: "the new member's node id, never used before"},
				&cli.StringFlag{Name: "address", Required: true, Usage: "host:port of the new member's raft transport (its --cluster-addr)"},
			),
			Action: action(runClusterAddNode),
		},
		{
			Name:   "remove-node",
			Usage:  "remove a member (a dead one, before its replacement is added) from every partition",
			Flags:  commonFlags(&cli.Uint64Flag{Name: "id", Required: true, Usage: "the member's node id"}),
			Action: action(runClusterRemoveNode),
		},
	}
}

func runClusterAddNode(ctx context.Context, c *cli.Context, cl *client.Client) error {
	s, err := cl.AddClusterNode(ctx, c.Uint64("id"), c.String("address"))
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error { return clusterTables(w, s) })
}

func runClusterRemoveNode(ctx context.Context, c *cli.Context, cl *client.Client) error {
	s, err := cl.RemoveClusterNode(ctx, c.Uint64("id"))
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error { return clusterTables(w, s) })
}

func runClusterStatus(ctx context.Context, c *cli.Context, cl *client.Client) error {
	s, err := cl.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error { return clusterTables(w, s) })
}

func clusterTables(w io.Writer, s api.ClusterStatus) error {
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	fmt.Fprintf(w, "as seen from node %d\n\n", s.NodeID)
	var rows [][]string
	for _, n := range s.Nodes {
		reach := "yes"
		if !n.Reachable {
			reach = "NO"
		}
		rows = append(rows, []string{u(n.ID), n.Address, reach, strconv.Itoa(n.Leads), orDash(n.Tunnel), orDash(n.AdminURL)})
	}
	if err := table(w, []string{"NODE", "ADDRESS", "REACHABLE", "LEADS", "TUNNEL", "ADMIN URL"}, rows); err != nil {
		return err
	}
	if m := s.Metadata; m != nil {
		leader := "none"
		if m.Leader != 0 {
			leader = u(m.Leader)
		}
		var recorded []string
		for _, n := range s.Nodes {
			if n.Recorded {
				recorded = append(recorded, u(n.ID))
			}
		}
		fmt.Fprintf(w, "\nmetadata shard: leader %s, term %d, applied %d, replicas %v; recorded members %v; sealing key id %s\n",
			leader, m.Term, m.AppliedIndex, m.Replicas, recorded, m.SealKeyID)
	}
	fmt.Fprintln(w)
	rows = rows[:0]
	for _, p := range s.Partitions {
		leader := "-"
		if p.Leader != 0 {
			leader = u(p.Leader)
		}
		reps := ""
		for i, r := range p.Replicas {
			if i > 0 {
				reps += ","
			}
			reps += u(r)
		}
		rows = append(rows, []string{strconv.Itoa(int(p.Partition)), reps, leader, u(p.Term), u(p.Owner) + "@" + u(p.OwnerTerm), u(p.AppliedIndex), worstLag(p.Applied), strconv.Itoa(len(p.Destinations))})
	}
	if err := table(w, []string{"PARTITION", "REPLICAS", "LEADER", "TERM", "OWNER@TERM", "APPLIED", "LAG", "DESTINATIONS"}, rows); err != nil {
		return err
	}
	if len(s.LagUnknown) > 0 {
		_, err := fmt.Fprintf(w, "\nLAG leaves out members %v: they did not answer (or their admin API is not known here)\n", s.LagUnknown)
		return err
	}
	return nil
}

// worstLag is the LAG column: how far the member furthest behind is
// (and which), 0 when all have applied the same, - when not known.
func worstLag(applied []api.ReplicaApplied) string {
	if len(applied) == 0 {
		return "-"
	}
	worst := applied[0]
	for _, r := range applied[1:] {
		if r.Lag > worst.Lag {
			worst = r
		}
	}
	if worst.Lag == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (node %d)", worst.Lag, worst.Node)
}
