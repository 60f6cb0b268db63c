package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/webhookops/webhookops/admin/backup"
	"github.com/webhookops/webhookops/admin/client"
	"github.com/webhookops/webhookops/wal"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "take a consistent online backup of a running node through its admin API",
		Description: "Writes the node's Pebble checkpoint, its --config file and a manifest (version, time, counts, checksums) into --to.\n" +
			"The key that seals secrets at rest is left out unless --include-secret-key: keep <data-dir>/secret.key\n" +
			"(or WEBHOOKOPS_SECRET_KEY) apart from the backups; restore needs it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Required: true, Usage: "directory to write the backup into (new or empty)"},
			&cli.BoolFlag{Name: "include-secret-key", Usage: "also take the sealing key and the tunnel's TLS identity (the backup then opens every secret: keep it as safe as the key)"},
			&cli.StringFlag{Name: "server", Value: client.DefaultServer, EnvVars: []string{"WEBHOOKOPS_SERVER"}, Usage: "admin API base URL"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"WEBHOOKOPS_TOKEN"}, Usage: "admin API token (an admin one)"},
			&cli.BoolFlag{Name: "json", Usage: "print the manifest as JSON"},
		},
		Action: runBackup,
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "restore a backup into a new data dir (the node stays stopped; start it with serve --data-dir)",
		Description: "Checks every file against the manifest, copies the store into --data-dir (which must be new or empty),\n" +
			"and opens it with the key to read every sealed secret back. The key comes from the backup (--include-secret-key),\n" +
			"from --secret-key-file (the old node's <data-dir>/secret.key), or from WEBHOOKOPS_SECRET_KEY.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Required: true, Usage: "backup directory written by `webhookops backup`"},
			&cli.StringFlag{Name: "data-dir", Required: true, EnvVars: []string{"WEBHOOKOPS_DATA_DIR"}, Usage: "data dir to create (new or empty)"},
			&cli.StringFlag{Name: "secret-key-file", Usage: "the sealing key, when the backup does not carry it"},
		},
		Action: runRestore,
	}
}

func runBackup(c *cli.Context) error {
	dir := c.String("to")
	created, err := prepareEmptyDir(dir, "--to")
	if err != nil {
		return err
	}
	cl, err := client.New(c.String("server"), c.String("token"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := fetchBackup(ctx, cl, c.Bool("include-secret-key"), dir)
	if err != nil {
		clearDir(dir, created)
		return fmt.Errorf("backup: %w (nothing kept in %s)", err, dir)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	w := c.App.Writer
	fmt.Fprintf(w, "backup of %s (webhookops %s) taken %s into %s: %.1f MiB in %d files\n",
		orUnknown(m.Host), m.Version, m.CreatedAt.Format("2006-01-02 15:04:05 MST"), dir, float64(size)/(1<<20), len(m.Files))
	fmt.Fprintf(w, "  events %d (last sequence %d), pending deliveries %d, dead letters %d, audit entries %d\n",
		m.Stats.Events, m.Stats.LastEventSeq, m.Stats.PendingDeliveries, m.Stats.DeadLetters, m.Stats.AuditEntries)
	fmt.Fprintf(w, "  sources %d, destinations %d, agents %d, forwards %d, tokens %d\n",
		len(m.Stats.Config["sources"]), len(m.Stats.Config["destinations"]), len(m.Stats.Config["agents"]),
		len(m.Stats.Config["forwards"]), len(m.Stats.Config["tokens"]))
	if m.SecretKeyIncluded {
		fmt.Fprintf(w, "  includes the secret key %s and the tunnel identity: anyone with this backup can open every secret\n", m.SecretKeyID)
	} else {
		fmt.Fprintf(w, "  secret key %s not included: keep the node's %s (or WEBHOOKOPS_SECRET_KEY) safe apart from backups; restore needs it\n",
			m.SecretKeyID, filepath.Join(m.DataDir, wal.SecretKeyFile))
	}
	return nil
}

// fetchBackup streams a backup from the node into dir.
func fetchBackup(ctx context.Context, cl *client.Client, includeKey bool, dir string) (*backup.Manifest, error) {
	rc, err := cl.Backup(ctx, includeKey)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return backup.Extract(rc, dir)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed host"
	}
	return s
}

// prepareEmptyDir makes sure dir is new or empty and exists; created says
// whether this call made it.
func prepareEmptyDir(dir, flag string) (created bool, err error) {
	if err := wal.CheckEmptyDir(dir); err != nil {
		if errors.Is(err, wal.ErrNotEmpty) {
			return false, fmt.Errorf("%s %s is not empty: choose a new directory (nothing is ever written over)", flag, dir)
		}
		return false, fmt.Errorf("%s: %w", flag, err)
	}
	if _, err := os.Stat(dir); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("%s: %w", flag, err)
	}
	return true, nil
}

// clearDir undoes a failed write into dir: removes it if this run made it,
// else empties it.
func clearDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func runRestore(c *cli.Context) error {
	from, to := c.String("from"), c.String("data-dir")
	m, err := backup.Verify(from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	key, keySource, err := restoreKey(m, from, c.String("secret-key-file"))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	created, err := prepareEmptyDir(to, "--data-dir")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	st, err := restoreInto(m, from, to, key, keySource != "environment")
	if err != nil {
		clearDir(to, created)
		return fmt.Errorf("restore: %w (nothing kept in %s)", err, to)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "restored the backup of %s taken %s into %s: %d events (last sequence %d), %d pending deliveries, %d dead letters; every secret opens with the key from %s\n",
		orUnknown(m.Host), m.CreatedAt.Format("2006-01-02 15:04:05 MST"), to, st.Events, st.LastEventSeq, st.PendingDeliveries, st.DeadLetters, keySource)
	next := "webhookops serve --data-dir " + to
	if m.ConfigFile != "" {
		next += " --config " + m.ConfigFile
		fmt.Fprintf(w, "the node was started with --config %s; the copy taken with the backup is %s\n", m.ConfigFile, filepath.Join(from, backup.ConfigName))
	}
	if keySource == "environment" {
		fmt.Fprintf(w, "no secret.key was written: start the node with the same %s\n", wal.EnvSecretKey)
	}
	fmt.Fprintf(w, "start it with: %s\n", next)
	return nil
}

// restoreKey finds the sealing key: --secret-key-file, else the backup's,
// else the environment. Whichever it is must be the one the backup's
// secrets were sealed with.
func restoreKey(m *backup.Manifest, from, keyFile string) (key []byte, source string, err error) {
	switch {
	case keyFile != "":
		key, err = wal.ReadSecretKeyFile(keyFile)
		source = keyFile
	case m.SecretKeyIncluded:
		key, err = wal.ReadSecretKeyFile(filepath.Join(from, backup.SecretKeyName))
		source = "the backup"
	case os.Getenv(wal.EnvSecretKey) != "":
		key, err = hex.DecodeString(strings.TrimSpace(os.Getenv(wal.EnvSecretKey)))
		if err == nil && len(key) != 32 {
			err = errors.New("not 32 bytes")
		}
		if err != nil {
			err = fmt.Errorf("%s must be 64 hex characters: %v", wal.EnvSecretKey, err)
		}
		source = "environment"
	default:
		return nil, "", fmt.Errorf("the backup does not carry the secret key (%s): pass --secret-key-file with the old node's %s, or set %s",
			m.SecretKeyID, wal.SecretKeyFile, wal.EnvSecretKey)
	}
	if err != nil {
		return nil, "", err
	}
	if id := wal.KeyID(key); m.SecretKeyID != "" && id != m.SecretKeyID {
		return nil, "", fmt.Errorf("the key from %s is %s, but this backup's secrets are sealed with %s", source, id, m.SecretKeyID)
	}
	return key, source, nil
}

// restoreInto copies the store (and the tunnel identity, if the backup
// has it) into the data dir to, writes the key file unless the key lives
// in the environment, and opens the result to check it.
func restoreInto(m *backup.Manifest, from, to string, key []byte, writeKey bool) (wal.Stats, error) {
	for _, f := range m.Files {
		top, _, _ := strings.Cut(f.Path, "/")
		if top != backup.PebbleDir && top != backup.TunnelDir {
			continue // config.yaml stays in the backup; secret.key is written below
		}
		if err := copyFile(filepath.Join(from, filepath.FromSlash(f.Path)), filepath.Join(to, filepath.FromSlash(f.Path))); err != nil {
			return wal.Stats{}, err
		}
	}
	if writeKey {
		if err := wal.WriteSecretKeyFile(filepath.Join(to, wal.SecretKeyFile), key); err != nil {
			return wal.Stats{}, err
		}
	}
	st, err := wal.VerifyRestored(to, key)
	if err != nil {
		return wal.Stats{}, err
	}
	if st.Events != m.Stats.Events || st.LastEventSeq != m.Stats.LastEventSeq || st.PendingDeliveries != m.Stats.PendingDeliveries {
		return wal.Stats{}, fmt.Errorf("the restored store holds %d events (last %d, %d pending), the manifest says %d (last %d, %d pending)",
			st.Events, st.LastEventSeq, st.PendingDeliveries, m.Stats.Events, m.Stats.LastEventSeq, m.Stats.PendingDeliveries)
	}
	return st, nil
}

// copyFile copies src to a new file dst, mode 0600, synced.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
