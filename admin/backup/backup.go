// Package backup is the format of a WebhookOps backup, shared by the node
// that writes it (the admin API's POST /api/v1/backup), the CLI that
// unpacks it (`webhookops backup --to DIR`) and restore, which checks it
// again before copying anything (`webhookops restore --from DIR`).
//
// On the wire a backup is a tar stream of regular files ending with
// manifest.json; on disk it is the same files in a directory:
//
//	pebble/...        a Pebble checkpoint of the store (every commit acknowledged
//	                  before the backup began is in it)
//	config.yaml       the --config file the node was started with, if any
//	secret.key        the key sealing secrets at rest: only when asked for
//	tunnel/...        the tunnel's certificate and key (agents pin it): only
//	                  with the secret key
//	manifest.json     format, version, time, counts, and every file above with
//	                  its size and SHA-256
//
// The manifest comes last so a stream cut short has none and is refused;
// each file is checked against it as it lands.
//
// # What this package must never do
//
// Link storage or the actor runtime (the CLI uses it); write outside the
// target directory, whatever names a stream carries; accept a backup whose
// files do not match its manifest.
package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Format is the version of this layout; a reader refuses a newer one.
const Format = 1

// Names inside a backup.
const (
	ManifestName  = "manifest.json"
	PebbleDir     = "pebble"
	ConfigName    = "config.yaml"
	SecretKeyName = "secret.key"
	TunnelDir     = "tunnel"
)

// ContentType is the media type of the stream.
const ContentType = "application/x-tar"

// maxManifest bounds the manifest read from a stream.
const maxManifest = 64 << 20

// Errors.
var (
	ErrIncomplete = errors.New("backup: the stream ended before its manifest (cut short?)")
	ErrMismatch   = errors.New("backup: files do not match the manifest")
)

// File is one file of a backup.
type File struct {
	Path   string `json:"path"` // slash-separated, relative
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Stats counts what the store in a backup holds; it has the fields of
// wal.Stats (a conversion between the two does not compile if they drift).
type Stats struct {
	Partitions        int                 `json:"partitions"`
	Events            uint64              `json:"events"`
	LastEventSeq      uint64              `json:"last_event_seq"`
	DedupeKeys        uint64              `json:"dedupe_keys"`
	Outbox            uint64              `json:"outbox"`
	PendingDeliveries uint64              `json:"pending_deliveries"`
	DeliveryRecords   uint64              `json:"delivery_records"`
	DeadLetters       uint64              `json:"dead_letters"`
	AuditEntries      uint64              `json:"audit_entries"`
	LastAuditSeq      uint64              `json:"last_audit_seq"`
	Config            map[string][]string `json:"config"`
	Other             uint64              `json:"other_keys,omitempty"`
}

// Manifest describes a backup.
type Manifest struct {
	Format    int       `json:"format"`
	Version   string    `json:"webhookops_version"`
	Commit    string    `json:"commit,omitempty"`
	GoVersion string    `json:"go_version,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Host      string    `json:"host,omitempty"`
	DataDir   string    `json:"data_dir"`
	// ConfigFile is the path of the --config file the node was started
	// with; its content is config.yaml.
	ConfigFile string `json:"config_file,omitempty"`
	// SecretKeyID names the sealing key (wal.KeyID), included or not, so a
	// restore can tell the right key file from a wrong one.
	SecretKeyID       string `json:"secret_key_id"`
	SecretKeyIncluded bool   `json:"secret_key_included"`
	Stats             Stats  `json:"stats"`
	Files             []File `json:"files"`
}

// checkName accepts a relative, clean, slash-separated path that stays
// inside the backup and is not the manifest.
func checkName(name string) error {
	switch {
	case name == "" || name == ManifestName:
		return fmt.Errorf("backup: file name %q is reserved or empty", name)
	case strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0):
		return fmt.Errorf("backup: file name %q is not a relative slash path", name)
	case path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("backup: file name %q is not clean or leaves the backup", name)
	}
	return nil
}

// hashingWriter counts and hashes what passes through it.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashing(w io.Writer) *hashingWriter { return &hashingWriter{w: w, h: sha256.New()} }

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashingWriter) file(name string) File {
	return File{Path: name, Size: h.n, SHA256: hex.EncodeToString(h.h.Sum(nil))}
}

// Writer writes a backup stream.
type Writer struct {
	tw    *tar.Writer
	files []File
	names map[string]bool
}

// NewWriter starts a stream on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{tw: tar.NewWriter(w), names: map[string]bool{}}
}

func (w *Writer) header(name string, size int64, mod time.Time) error {
	if err := checkName(name); err != nil {
		return err
	}
	if w.names[name] {
		return fmt.Errorf("backup: %s added twice", name)
	}
	w.names[name] = true
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: mod, Format: tar.FormatPAX})
}

// AddFile streams the file at path into the backup as name.
func (w *Writer) AddFile(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("backup: %s is not a regular file", path)
	}
	if err := w.header(name, fi.Size(), fi.ModTime()); err != nil {
		return err
	}
	hw := newHashing(w.tw)
	// The size went into the header: a file that changes under us is an
	// error, not a corrupt backup.
	if _, err := io.CopyN(hw, f, fi.Size()); err != nil {
		return fmt.Errorf("backup: %s: %w", path, err)
	}
	w.files = append(w.files, hw.file(name))
	return nil
}

// AddDir adds every regular file below dir under the prefix name.
func (w *Writer) AddDir(name, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return w.AddFile(path.Join(name, filepath.ToSlash(rel)), p)
	})
}

// AddBytes adds b as name.
func (w *Writer) AddBytes(name string, b []byte) error {
	if err := w.header(name, int64(len(b)), time.Now()); err != nil {
		return err
	}
	hw := newHashing(w.tw)
	if _, err := hw.Write(b); err != nil {
		return err
	}
	w.files = append(w.files, hw.file(name))
	return nil
}

// Finish writes the manifest, listing the files added, and ends the
// stream.
func (w *Writer) Finish(m Manifest) error {
	m.Format = Format
	m.Files = w.files
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Size: int64(len(raw)), Mode: 0o600, ModTime: m.CreatedAt, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := w.tw.Write(raw); err != nil {
		return err
	}
	return w.tw.Close()
}

func parseManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("backup: manifest: %w", err)
	}
	if m.Format < 1 || m.Format > Format {
		return nil, fmt.Errorf("backup: manifest format %d; this build reads up to %d (restore with a newer webhookops)", m.Format, Format)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if err := checkName(f.Path); err != nil {
			return nil, err
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("backup: manifest lists %s twice", f.Path)
		}
		seen[f.Path] = true
	}
	return &m, nil
}

// sameFiles compares what the manifest lists with what was found.
func sameFiles(listed, found []File) error {
	key := func(f File) string { return f.Path }
	a, b := slices.Clone(listed), slices.Clone(found)
	slices.SortFunc(a, func(x, y File) int { return strings.Compare(key(x), key(y)) })
	slices.SortFunc(b, func(x, y File) int { return strings.Compare(key(x), key(y)) })
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return fmt.Errorf("%w: %s is not in the manifest", ErrMismatch, b[i].Path)
		case i >= len(b):
			return fmt.Errorf("%w: %s is missing", ErrMismatch, a[i].Path)
		case a[i].Path != b[i].Path:
			if a[i].Path < b[i].Path {
				return fmt.Errorf("%w: %s is missing", ErrMismatch, a[i].Path)
			}
			return fmt.Errorf("%w: %s is not in the manifest", ErrMismatch, b[i].Path)
		case a[i] != b[i]:
			return fmt.Errorf("%w: %s has size %d sha256 %s, the manifest says %d %s", ErrMismatch, a[i].Path, b[i].Size, b[i].SHA256, a[i].Size, a[i].SHA256)
		}
	}
	return nil
}

// Extract unpacks a stream into dir (which must exist and be empty),
// checking every file against the manifest that ends it; the manifest is
// written last, so a directory without one is not a backup. On error what
// was written stays for the caller to remove.
func Extract(r io.Reader, dir string) (*Manifest, error) {
	tr := tar.NewReader(r)
	var (
		found []File
		m     *Manifest
		raw   []byte
		seen  = map[string]bool{}
	)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("backup: reading the stream: %w", err)
		}
		if m != nil {
			return nil, fmt.Errorf("backup: %s after the manifest", h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("backup: %s is not a regular file (type %q)", h.Name, h.Typeflag)
		}
		if h.Name == ManifestName {
			if raw, err = io.ReadAll(io.LimitReader(tr, maxManifest+1)); err != nil {
				return nil, fmt.Errorf("backup: reading the manifest: %w", err)
			}
			if len(raw) > maxManifest {
				return nil, errors.New("backup: manifest too large")
			}
			if m, err = parseManifest(raw); err != nil {
				return nil, err
			}
			continue
		}
		if err := checkName(h.Name); err != nil {
			return nil, err
		}
		if seen[h.Name] {
			return nil, fmt.Errorf("backup: %s twice in the stream", h.Name)
		}
		seen[h.Name] = true
		f, err := writeFile(filepath.Join(dir, filepath.FromSlash(h.Name)), h.Name, tr)
		if err != nil {
			return nil, err
		}
		found = append(found, f)
	}
	if m == nil {
		return nil, ErrIncomplete
	}
	if err := sameFiles(m.Files, found); err != nil {
		return nil, err
	}
	if _, err := writeFile(filepath.Join(dir, ManifestName), ManifestName, strings.NewReader(string(raw))); err != nil {
		return nil, err
	}
	return m, syncDirs(dir)
}

// writeFile creates path (never over an existing file) from r, synced,
// and returns what it wrote.
func writeFile(p, name string, r io.Reader) (File, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return File{}, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	hw := newHashing(f)
	_, err = io.Copy(hw, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, fmt.Errorf("backup: writing %s: %w", name, err)
	}
	return hw.file(name), nil
}

// syncDirs fsyncs every directory below and including dir, so the new
// names survive a crash.
func syncDirs(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// Verify checks a backup directory against its manifest: every file
// listed is there with its size and SHA-256, and nothing else is.
func Verify(dir string) (*Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: %s has no %s: not a backup, or one that did not finish", dir, ManifestName)
	}
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	var found []File
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if name == ManifestName {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("backup: %s is not a regular file", name)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		hw := newHashing(io.Discard)
		if _, err := io.Copy(hw, f); err != nil {
			return err
		}
		found = append(found, hw.file(name))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, sameFiles(m.Files, found)
}

// Has reports whether the manifest lists name.
func (m *Manifest) Has(name string) bool {
	return slices.ContainsFunc(m.Files, func(f File) bool { return f.Path == name })
}
