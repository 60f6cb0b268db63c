package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/cluster"
	"github.com/webhookops/webhookops/admin"
	"github.com/webhookops/webhookops/admin/api"
	admincli "github.com/webhookops/webhookops/admin/cli"
	"github.com/webhookops/webhookops/wal"
)

func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cluster-addr", EnvVars: []string{"WEBHOOKOPS_CLUSTER_ADDR"}, Usage: "host:port of this node's raft transport; set it (with --node-id and --initial-members) to run as a cluster member"},
		&cli.Uint64Flag{Name: "node-id", EnvVars: []string{"WEBHOOKOPS_NODE_ID"}, Usage: "this node's id in the cluster, a number above 0"},
		&cli.StringFlag{Name: "initial-members", EnvVars: []string{"WEBHOOKOPS_INITIAL_MEMBERS"}, Usage: "every member at the cluster's first start: 1=host:port,2=host:port,3=host:port (the same on every node)"},
		&cli.StringFlag{Name: "cluster-ca", EnvVars: []string{"WEBHOOKOPS_CLUSTER_CA"}, Usage: "PEM CA that signs every member's certificate (mutual TLS between members; required off loopback)"},
		&cli.StringFlag{Name: "cluster-cert", EnvVars: []string{"WEBHOOKOPS_CLUSTER_CERT"}, Usage: "PEM certificate of this member, for its --cluster-addr host"},
		&cli.StringFlag{Name: "cluster-key", EnvVars: []string{"WEBHOOKOPS_CLUSTER_KEY"}, Usage: "PEM key for --cluster-cert"},
		&cli.StringFlag{Name: "cluster-seal-key", EnvVars: []string{"WEBHOOKOPS_CLUSTER_SEAL_KEY"}, Usage: "file of the cluster sealing key (" + cluster.SealKeyName + " from `webhookops cluster ca` or `cluster seal-key`), the same on every member: it seals the replicated configuration's secrets in the raft log and between members"},
		&cli.BoolFlag{Name: "join", EnvVars: []string{"WEBHOOKOPS_CLUSTER_JOIN"}, Usage: "this member was added to a running cluster with `webhookops cluster add-node` (it replaces a removed one): start without --initial-members and catch up from the others"},
		memberAdminURLsFlag,
		adminAdvertiseFlag,
		&cli.IntFlag{Name: "cluster-partitions", Value: 16, EnvVars: []string{"WEBHOOKOPS_CLUSTER_PARTITIONS"}, Usage: "raft-replicated partitions, fixed at the cluster's first start (the same on every node)"},
	}
}

// clusterTLS is the member's mutual-TLS files (--cluster-ca, --cluster-cert,
// --cluster-key): for raft traffic and for the requests it forwards to the
// other members' admin APIs.
func clusterTLS(c *cli.Context) cluster.TLSFiles {
	return cluster.TLSFiles{CA: c.String("cluster-ca"), Cert: c.String("cluster-cert"), Key: c.String("cluster-key")}
}

// clusterMember is what serve holds of a running cluster member.
type clusterMember struct {
	cl   *cluster.Cluster
	node *actors.Node
	log  *slog.Logger
	stop chan struct{}
	wg   sync.WaitGroup // proposeFile
}

// status is the admin API's view of the cluster.
func (m *clusterMember) status(ctx context.Context) (api.ClusterStatus, error) {
	st, err := m.cl.Status(ctx)
	if err != nil {
		return api.ClusterStatus{}, err
	}
	out := api.ClusterStatus{NodeID: st.NodeID, Nodes: []api.ClusterNode{}, Partitions: partitionsOut(st.Partitions)}
	m.addDestinations(out.Partitions)
	tunnels, _ := m.cl.Tunnels() // none: the status goes without tunnel addresses
	for _, n := range st.Nodes {
		rec, recorded := st.Recorded[n.ID]
		out.Nodes = append(out.Nodes, api.ClusterNode{ID: n.ID, Address: n.Address, Reachable: n.Reachable, Leads: n.Leads, Tunnel: tunnels[n.ID].Addr,
			Recorded: recorded, AdminURL: rec.AdminURL})
	}
	if ms := st.Meta; ms != nil {
		m := metadataOut(ms)
		out.Metadata = &m
	}
	return out, nil
}

// metadata is the metadata shard as this member sees it (for /metrics).
func (m *clusterMember) metadata() (api.ClusterMetadata, error) {
	ms, err := m.cl.MetaStatus()
	if err != nil || ms == nil {
		return api.ClusterMetadata{}, err
	}
	return metadataOut(ms), nil
}

func metadataOut(ms *cluster.MetaStatus) api.ClusterMetadata {
	return api.ClusterMetadata{Replicas: ms.Replicas, Leader: ms.Leader, Term: ms.Term, AppliedIndex: ms.Applied, SealKeyID: ms.SealKeyID}
}

// partitions is the partitions as this member sees them, without asking
// other members and without their destination lists (for /metrics, which
// reads leaders, terms and applied indexes on every scrape).
func (m *clusterMember) partitions() ([]api.ClusterPartition, error) {
	ps, err := m.cl.Partitions()
	if err != nil {
		return nil, err
	}
	return partitionsOut(ps), nil
}

func partitionsOut(ps []cluster.PartitionStatus) []api.ClusterPartition {
	out := make([]api.ClusterPartition, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.ClusterPartition{Partition: p.Partition, Replicas: p.Replicas, Leader: p.Leader, Term: p.Term,
			Owner: p.Owner, OwnerTerm: p.OwnerTerm, AppliedIndex: p.Applied, Destinations: []string{}, Delivering: p.Delivering})
	}
	return out
}

// addDestinations lists each partition's destinations, sorted.
func (m *clusterMember) addDestinations(ps []api.ClusterPartition) {
	at := make(map[uint16]int, len(ps))
	for i, p := range ps {
		at[p.Partition] = i
	}
	for slug := range m.node.Snapshot().Destinations {
		if i, ok := at[m.node.DB().DestPartition(slug)]; ok {
			ps[i].Destinations = append(ps[i].Destinations, slug)
		}
	}
	for i := range ps {
		slices.Sort(ps[i].Destinations)
	}
}

// Close leaves the cluster. Idempotent.
func (m *clusterMember) Close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	m.cl.Close()
	m.wg.Wait()
}

// proposeFile proposes the objects of the --config file to the metadata
// shard, in the background: once this member has caught up with the
// shard, and only if they change something (a restart with the same file
// writes no entry). It retries while the shard has no quorum (the first
// member of a new cluster starts alone). Members whose files disagree
// overwrite each other's objects: the last proposal wins, and says so in
// the log.
func (m *clusterMember) proposeFile(ch actors.Change, path string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			err := m.fileOnce(ch, path)
			if err == nil {
				return
			}
			if !errors.Is(err, actors.ErrUnavailable) {
				m.log.Error("the cluster refused the config file", "file", path, "err", err)
				return
			}
			select {
			case <-m.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

func (m *clusterMember) fileOnce(ch actors.Change, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := m.node.CatchUpConfig(ctx)
	cancel()
	if err != nil {
		return err
	}
	changes, err := m.node.WouldChange(ch)
	if err != nil {
		return err
	}
	if !changes {
		m.log.Info("config file matches the cluster's configuration", "file", path)
		return nil
	}
	if err := m.node.Apply(ch); err != nil {
		return err
	}
	m.log.Warn("config file proposed to the cluster: its objects replace the cluster's where they differ (the last proposal wins)", "file", path)
	return nil
}

// AddNode and RemoveNode implement admin.Membership.
func (m *clusterMember) AddNode(ctx context.Context, id uint64, addr string) error {
	return membershipErr(m.cl.AddNode(ctx, id, addr))
}

func (m *clusterMember) RemoveNode(ctx context.Context, id uint64) error {
	return membershipErr(m.cl.RemoveNode(ctx, id))
}

func membershipErr(err error) error {
	if errors.Is(err, cluster.ErrMembership) {
		return fmt.Errorf("%w: %v", admin.ErrMembershipRefused, err)
	}
	return err
}

// clusterMode reports whether serve runs as a cluster member, and refuses
// cluster flags without --cluster-addr.
func clusterMode(c *cli.Context) (bool, error) {
	if c.String("cluster-addr") != "" {
		return true, nil
	}
	if c.IsSet("node-id") || c.IsSet("initial-members") || c.IsSet("join") || c.IsSet(memberAdminURLsFlag.Name) || c.IsSet(adminAdvertiseFlag.Name) {
		return false, fmt.Errorf("--node-id, --initial-members, --join, --%s and --%s need --cluster-addr", memberAdminURLsFlag.Name, adminAdvertiseFlag.Name)
	}
	return false, nil
}

// prepareStore checks that the store fits the mode before the node reads
// it. A member's partitions are replicas in the node's own store; a single
// node must not deliver from them on its own, and a member must not start
// on a single node's events, which no other replica knows.
func prepareStore(c *cli.Context, db *wal.DB, member bool) error {
	dir := c.String("data-dir")
	owner, err := db.ClusterMember()
	if err != nil {
		return err
	}
	if !member {
		if owner != 0 {
			return fmt.Errorf("%s belongs to cluster member %d: start it with its cluster flags (--cluster-addr, --node-id %d, --initial-members)", dir, owner, owner)
		}
		return nil
	}
	if want := c.Int("cluster-partitions"); db.Partitions() != want {
		return fmt.Errorf("%s has %d partitions, --cluster-partitions is %d: every member has the same count, fixed at the cluster's first start; a new member starts from an empty data dir", dir, db.Partitions(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster")); err == nil {
		return fmt.Errorf("%s holds replicated partitions in the layout of an earlier version (%s): start this member from an empty data dir; it catches up from the others", dir, filepath.Join(dir, "cluster"))
	}
	return db.MarkClusterMember(c.Uint64("node-id"))
}

// startCluster joins the cluster with the node's own store: the node
// delivers what this member owns, and records its admin URL (from
// --admin-advertise-url or adminAddr, the admin listener's address,
// secure when it serves TLS) for the others. It returns nil when serve
// runs a single node.
func startCluster(c *cli.Context, node *actors.Node, db *wal.DB, log *slog.Logger, adminAddr net.Addr, secure bool) (*clusterMember, error) {
	addr := c.String("cluster-addr")
	if addr == "" {
		return nil, nil
	}
	var bound netip.AddrPort
	if ta, ok := adminAddr.(*net.TCPAddr); ok {
		bound = ta.AddrPort()
	}
	adminURL, why, err := adminAdvertiseURL(c.String(adminAdvertiseFlag.Name), bound, secure)
	if err != nil {
		return nil, err
	}
	if adminURL == "" {
		log.Warn("this member records no admin URL: a replay asked of another member cannot be forwarded to it (409); start it with --"+adminAdvertiseFlag.Name,
			"reason", why, "admin_addr", adminAddr.String())
	}
	var members map[uint64]string
	switch join := c.Bool("join"); {
	case join && c.IsSet("initial-members"):
		return nil, errors.New("--join takes no --initial-members: the member was added with `webhookops cluster add-node`")
	case !join:
		var err error
		if members, err = cluster.ParseMembers(c.String("initial-members")); err != nil {
			return nil, fmt.Errorf("--initial-members: %w", err)
		}
	}
	if c.String("cluster-seal-key") == "" {
		return nil, fmt.Errorf("a cluster member needs --cluster-seal-key: the same key file on every member (make one with `webhookops cluster seal-key --out %s`, or take %s from `webhookops cluster ca`)", cluster.SealKeyName, cluster.SealKeyName)
	}
	key, err := cluster.LoadSealKey(c.String("cluster-seal-key"))
	if err != nil {
		return nil, fmt.Errorf("--cluster-seal-key: %w", err)
	}
	cl, err := cluster.Start(cluster.Config{
		NodeID:       c.Uint64("node-id"),
		RaftAddr:     addr,
		Members:      members,
		Join:         c.Bool("join"),
		Dir:          filepath.Join(c.String("data-dir"), "raft"),
		DB:           db,
		DedupeWindow: c.Duration("dedupe-window"),
		Now:          node.Clock().Now,
		Logger:       log.With("component", "cluster"),
		Audit:        node.Audit,
		Engine:       node,
		Configs:      node,
		SealKey:      key,
		AdminURL:     adminURL,
		TLS:          clusterTLS(c),
	})
	if err != nil {
		return nil, err
	}
	log.Info("cluster member", "node_id", c.Uint64("node-id"), "raft", addr, "admin_url", adminURL, "members", len(members), "partitions", db.Partitions(), "seal_key_id", key.ID())
	return &clusterMember{cl: cl, node: node, log: log.With("component", "cluster"), stop: make(chan struct{})}, nil
}

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "cluster certificates, status and members",
		Subcommands: append([]*cli.Command{
			{
				Name:   "ca",
				Usage:  "create a cluster CA (ca.pem, ca-key.pem; keep its key off the nodes) and the cluster sealing key (" + cluster.SealKeyName + ", for every member) in --dir",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "dir", Value: "cluster-ca", Usage: "directory for the CA"}},
				Action: runClusterCA,
			},
			{
				Name:  "cert",
				Usage: "sign a member's certificate (node<id>.pem, node<id>-key.pem) with the CA in --dir",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dir", Value: "cluster-ca", Usage: "directory of the CA"},
					&cli.Uint64Flag{Name: "node-id", Required: true, Usage: "the member's --node-id"},
					&cli.StringSliceFlag{Name: "host", Required: true, Usage: "an IP or DNS name the others dial this member at (repeat for several)"},
				},
				Action: runClusterCert,
			},
			{
				Name:   "seal-key",
				Usage:  "create a cluster sealing key file (give every member the same one with --cluster-seal-key)",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "out", Value: cluster.SealKeyName, Usage: "file to create (mode 0600); an existing one is kept"}},
				Action: runClusterSealKey,
			},
			admincli.ClusterStatusCommand(),
		}, admincli.ClusterNodeCommands()...),
	}
}

func runClusterCA(c *cli.Context) error {
	if err := cluster.CreateCA(c.String("dir")); err != nil {
		return err
	}
	cert, key := cluster.CAFiles(c.String("dir"))
	seal := filepath.Join(c.String("dir"), cluster.SealKeyName)
	if err := cluster.CreateSealKey(seal); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "created %s and %s, and the sealing key %s (copy it to every member: --cluster-seal-key)\n", cert, key, seal)
	return nil
}

func runClusterSealKey(c *cli.Context) error {
	if err := cluster.CreateSealKey(c.String("out")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "created %s: give every member of the cluster this file with --cluster-seal-key\n", c.String("out"))
	return nil
}

func runClusterCert(c *cli.Context) error {
	id := c.Uint64("node-id")
	if err := cluster.IssueNode(c.String("dir"), id, c.StringSlice("host")); err != nil {
		return err
	}
	cert, key := cluster.NodeFiles(c.String("dir"), id)
	ca, _ := cluster.CAFiles(c.String("dir"))
	fmt.Fprintf(c.App.Writer, "created %s and %s\nserve with: --cluster-ca %s --cluster-cert %s --cluster-key %s\n", cert, key, ca, cert, key)
	return nil
}
