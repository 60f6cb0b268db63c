package admin

import (
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/webhookops/webhookops/admin/backup"
	"github.com/webhookops/webhookops/wal"
)

// backupsDir is where checkpoints wait, inside the data dir, while they
// are streamed: on the store's file system, so Pebble hard-links its
// sstables instead of copying them.
const backupsDir = "backups"

// postBackup streams a consistent online backup (package admin/backup):
// a Pebble checkpoint taken now, the config file, the sealing key and the
// tunnel identity only when include_secret_key=true, and the manifest. One
// runs at a time. The answer is a tar stream; an error after the first byte
// can only cut the stream short, which leaves it without its manifest and
// so refused by every reader.
func (s *Server) postBackup(w http.ResponseWriter, r *http.Request) {
	p := s.principalOf(r)
	includeKey := false
	if v := r.URL.Query().Get("include_secret_key"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, errBadRequest("invalid", "include_secret_key", "%q is not true or false", v))
			return
		}
		includeKey = b
	}
	if !s.backupMu.TryLock() {
		writeError(w, errConflict("a backup of this node is already running"))
		return
	}
	defer s.backupMu.Unlock()

	tmp, err := s.newCheckpointDir()
	if err != nil {
		s.backupFailed(w, p, err)
		return
	}
	defer os.RemoveAll(tmp)
	ck := filepath.Join(tmp, wal.PebbleDir)
	started := s.now()
	if err := s.db.Checkpoint(ck); err != nil {
		s.backupFailed(w, p, err)
		return
	}
	stats, err := wal.InspectCheckpoint(ck)
	if err != nil {
		s.backupFailed(w, p, err)
		return
	}
	host, _ := os.Hostname()
	m := backup.Manifest{
		Version: s.cfg.Version, GoVersion: runtime.Version(), Commit: vcsRevision(),
		CreatedAt: started, Host: host, DataDir: s.db.Dir(), ConfigFile: s.cfg.ConfigFile,
		SecretKeyID: wal.KeyID(s.db.SecretKey()), SecretKeyIncluded: includeKey,
		Stats: backup.Stats(stats),
	}
	name := "webhookops-backup-" + started.Format("20060102T150405Z") + ".tar"
	w.Header().Set("Content-Type", backup.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)

	bw := backup.NewWriter(w)
	err = bw.AddDir(backup.PebbleDir, ck)
	if err == nil && s.cfg.ConfigFile != "" {
		err = bw.AddFile(backup.ConfigName, s.cfg.ConfigFile)
	}
	if err == nil && includeKey {
		err = bw.AddBytes(backup.SecretKeyName, []byte(hex.EncodeToString(s.db.SecretKey())+"\n"))
		tunnel := filepath.Join(s.db.Dir(), backup.TunnelDir)
		if _, serr := os.Stat(tunnel); err == nil && serr == nil {
			err = bw.AddDir(backup.TunnelDir, tunnel)
		}
	}
	if err == nil {
		err = bw.Finish(m)
	}
	if err != nil {
		// The client sees a stream without a manifest and refuses it.
		s.log.Error("backup cut short", "err", err)
		s.node.Audit(wal.AuditEntry{At: s.now(), Action: "backup.failed", ObjectType: "backup", ObjectID: name, Actor: p.actor(),
			Detail: map[string]string{"error": err.Error()}})
		return
	}
	s.node.Audit(wal.AuditEntry{At: s.now(), Action: "backup.created", ObjectType: "backup", ObjectID: name, Actor: p.actor(),
		Detail: map[string]string{
			"include_secret_key": strconv.FormatBool(includeKey),
			"events":             strconv.FormatUint(stats.Events, 10),
			"last_event_seq":     strconv.FormatUint(stats.LastEventSeq, 10),
			"took":               s.now().Sub(started).Round(time.Millisecond).String(),
		}})
}

// newCheckpointDir makes an empty directory for one backup's checkpoint
// and removes those a killed backup left behind (only one runs at a time,
// and the caller holds backupMu).
func (s *Server) newCheckpointDir() (string, error) {
	parent := filepath.Join(s.db.Dir(), backupsDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	if old, err := filepath.Glob(filepath.Join(parent, "backup-*")); err == nil {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	return os.MkdirTemp(parent, "backup-")
}

func (s *Server) backupFailed(w http.ResponseWriter, p principal, err error) {
	s.log.Error("backup failed", "err", err)
	s.node.Audit(wal.AuditEntry{At: s.now(), Action: "backup.failed", ObjectType: "backup", Actor: p.actor(),
		Detail: map[string]string{"error": err.Error()}})
	msg := "backup failed: " + err.Error()
	if errors.Is(err, wal.ErrClosed) {
		msg = "the node is stopping"
	}
	writeError(w, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: msg})
}

// principalOf names who called a raw route; the router has already
// checked the token.
func (s *Server) principalOf(r *http.Request) principal {
	tok, _ := bearer(r)
	p, _ := s.tokens.check(tok)
	return p
}

// vcsRevision is the commit the binary was built from, when Go recorded
// it.
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			if st.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
