package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"agentd", "version"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "agentd dev (protocol 1") {
		t.Fatalf("version printed %q", out.String())
	}
}

func TestJoinRefusesBadInput(t *testing.T) {
	fp := "sha256:" + strings.Repeat("ab", 32)
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("s3cret\n"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", fp}, "secret is required"},
		{"two secrets", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", fp, "--secret", "x", "--secret-file", secretFile}, "not both"},
		{"bad fingerprint", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", "sha1:00", "--secret-file", secretFile}, "fingerprint of gw:7443"},
		{"pins do not pair", []string{"--tunnel", "n1:7443,n2:7443,n3:7443", "--id", "a", "--server-fingerprint", fp, "--server-fingerprint", fp, "--secret", "x"}, "3 tunnel addresses and 2 server fingerprints"},
		{"bad second tunnel", []string{"--tunnel", "n1:7443", "--tunnel", "n2", "--id", "a", "--server-fingerprint", fp, "--secret", "x"}, `"n2" is not host:port`},
		{"bad allow", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", fp, "--secret", "x", "--allow", "localhost"}, "Allow entry"},
		{"bad transport", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", fp, "--secret", "x", "--transport", "udp"}, "--transport"},
		{"bad log format", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", fp, "--secret", "x", "--log-format", "xml"}, "--log-format"},
		{"negative procs", []string{"--tunnel", "gw:7443", "--id", "a", "--server-fingerprint", fp, "--secret", "x", "--procs", "-1"}, "--procs -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := newApp().Run(append([]string{"agentd", "join"}, c.args...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestReadSecretFileTrimsNewline(t *testing.T) {
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("s3cret\r\n"), 0o600)
	got, err := readSecret("", f)
	if err != nil || got != "s3cret" {
		t.Fatalf("readSecret = %q, %v", got, err)
	}
}

func TestJoinReadsEnv(t *testing.T) {
	t.Setenv("AGENTD_TUNNEL", "n1:7443,n2:7443")
	t.Setenv("AGENTD_ID", "a")
	t.Setenv("AGENTD_SERVER_FINGERPRINT", "sha256:"+strings.Repeat("ab", 32)+",sha256:"+strings.Repeat("cd", 32))
	t.Setenv("AGENTD_ALLOW", "localhost:3000,bad")
	t.Setenv("AGENTD_SECRET", "x")
	// Every required flag came from the environment; the comma-separated
	// tunnels and pins were paired, and the allow list was split and its
	// bad entry reached validation.
	err := newApp().Run([]string{"agentd", "join"})
	if err == nil || !strings.Contains(err.Error(), `Allow entry "bad"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestProcsSetting(t *testing.T) {
	cases := []struct {
		flag    int
		flagSet bool
		env     string
		want    int
		wantErr bool
	}{
		{flag: 1, want: 1},                          // the default
		{flag: 1, env: "4", want: 0},                // GOMAXPROCS=4 wins over the default
		{flag: 2, flagSet: true, env: "4", want: 2}, // --procs wins over GOMAXPROCS
		{flag: 0, flagSet: true, want: 0},           // one per CPU: the runtime's choice
		{flag: 3, flagSet: true, want: 3},
		{flag: -1, flagSet: true, wantErr: true},
		{flag: -1, env: "2", wantErr: true}, // AGENTD_PROCS=-1 is still refused
	}
	for _, c := range cases {
		got, err := procsSetting(c.flag, c.flagSet, c.env)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("procsSetting(%d, %v, %q) = %d, %v; want %d, error %v", c.flag, c.flagSet, c.env, got, err, c.want, c.wantErr)
		}
	}
}
