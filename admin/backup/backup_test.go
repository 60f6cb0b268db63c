package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sample writes a small backup stream: a directory of two files and two
// files from bytes.
func sample(t testing.TB) []byte {
	t.Helper()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o700)
	os.WriteFile(filepath.Join(src, "000001.sst"), bytes.Repeat([]byte("sst"), 1000), 0o600)
	os.WriteFile(filepath.Join(src, "sub", "MANIFEST-000001"), []byte("manifest"), 0o600)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.AddDir(PebbleDir, src); err != nil {
		t.Fatal(err)
	}
	if err := w.AddBytes(ConfigName, []byte("sources: []\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.AddBytes(ConfigName, nil); err == nil {
		t.Fatal("a name added twice")
	}
	if err := w.Finish(Manifest{Version: "test", CreatedAt: time.Unix(1700000000, 0).UTC(), SecretKeyID: "sha256:00", Stats: Stats{Partitions: 8, Events: 3}}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	stream := sample(t)
	dir := t.TempDir()
	m, err := Extract(bytes.NewReader(stream), dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != Format || m.Version != "test" || m.Stats.Events != 3 || len(m.Files) != 3 || !m.Has("pebble/sub/MANIFEST-000001") || !m.Has(ConfigName) {
		t.Fatalf("manifest %+v", m)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "pebble", "sub", "MANIFEST-000001")); string(b) != "manifest" {
		t.Fatalf("file content %q", b)
	}
	for _, f := range []string{ManifestName, "pebble/000001.sst"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	for name, tamper := range map[string]func(dir string){
		"changed": func(dir string) { os.WriteFile(filepath.Join(dir, ConfigName), []byte("sources: [x]\n"), 0o600) },
		"missing": func(dir string) { os.Remove(filepath.Join(dir, "pebble", "000001.sst")) },
		"extra":   func(dir string) { os.WriteFile(filepath.Join(dir, "pebble", "000002.sst"), nil, 0o600) },
		"no manifest": func(dir string) {
			os.Remove(filepath.Join(dir, ManifestName))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Extract(bytes.NewReader(sample(t)), dir); err != nil {
				t.Fatal(err)
			}
			tamper(dir)
			if _, err := Verify(dir); err == nil {
				t.Fatal("tampered backup verified")
			}
		})
	}
}

// TestCutShort: a prefix of a stream is refused unless it carries every
// file and the whole manifest.
func TestCutShort(t *testing.T) {
	stream := sample(t)
	for n := 0; n < len(stream); n += 97 {
		dir := t.TempDir()
		_, err := Extract(bytes.NewReader(stream[:n]), dir)
		if err == nil {
			// Cut inside the padding after the manifest: everything is
			// there, and it must all check out.
			if m, err := Verify(dir); err != nil || len(m.Files) != 3 {
				t.Fatalf("prefix of %d/%d bytes accepted: %v", n, len(stream), err)
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
			t.Fatalf("prefix of %d bytes left a manifest behind", n)
		}
	}
}

// craft builds a tar stream of the given entries in order.
func craft(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := []byte(h.Linkname)
		h.Linkname = ""
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtractRefuses(t *testing.T) {
	manifest := func(files string) tar.Header {
		return tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Linkname: `{"format":1,"files":[` + files + `]}`}
	}
	for name, tc := range map[string]struct {
		stream []byte
		err    string
	}{
		"escape":         {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: "../evil", Linkname: "x"}, manifest("")), "leaves the backup"},
		"absolute":       {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: "/tmp/evil", Linkname: "x"}, manifest("")), "not a relative"},
		"unclean":        {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: "pebble/../../evil", Linkname: "x"}, manifest("")), "not clean"},
		"symlink":        {craft(t, tar.Header{Typeflag: tar.TypeSymlink, Name: "pebble/l", Linkname: "/etc"}, manifest("")), "not a regular file"},
		"after manifest": {craft(t, manifest(""), tar.Header{Typeflag: tar.TypeReg, Name: "late", Linkname: "x"}), "after the manifest"},
		"newer format":   {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Linkname: `{"format":2}`}), "format 2"},
		"not listed":     {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: "a", Linkname: "x"}, manifest("")), "not in the manifest"},
		"missing":        {craft(t, manifest(`{"path":"a","size":1,"sha256":"00"}`)), "is missing"},
		"wrong hash":     {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: "a", Linkname: "x"}, manifest(`{"path":"a","size":1,"sha256":"00"}`)), "the manifest says"},
		"twice":          {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: "a", Linkname: "x"}, tar.Header{Typeflag: tar.TypeReg, Name: "a", Linkname: "x"}, manifest("")), "twice"},
		"bad json":       {craft(t, tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Linkname: `{`}), "manifest"},
		"empty":          {nil, "ended before its manifest"},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "b")
			os.Mkdir(dir, 0o700)
			_, err := Extract(bytes.NewReader(tc.stream), dir)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if _, err := os.Stat(filepath.Join(parent, "evil")); err == nil {
				t.Fatal("wrote outside the target")
			}
		})
	}
	if _, err := Extract(bytes.NewReader(nil), t.TempDir()); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("empty stream: %v", err)
	}
}

// FuzzExtract: no input panics, writes outside the target, or passes
// unless Verify agrees with what it wrote.
func FuzzExtract(f *testing.F) {
	f.Add(sample(f))
	f.Add(craft(f, tar.Header{Typeflag: tar.TypeReg, Name: "../x", Linkname: "x"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, stream []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "b")
		os.Mkdir(dir, 0o700)
		m, err := Extract(bytes.NewReader(stream), dir)
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Fatalf("wrote beside the target: %v", entries)
		}
		if err != nil {
			return
		}
		if _, err := Verify(dir); err != nil {
			t.Fatalf("extracted %d files but Verify says %v", len(m.Files), err)
		}
	})
}
