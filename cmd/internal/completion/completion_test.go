package completion

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// demoApp is a small program with the shape of ours: commands with
// flags, completion on.
func demoApp() *cli.App {
	return &cli.App{
		Name:                 "demo",
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{Name: "serve", Usage: "run", Flags: []cli.Flag{
				&cli.StringFlag{Name: "data-dir"}, &cli.StringFlag{Name: "tls-cert"},
			}, Action: func(*cli.Context) error { return nil }},
			{Name: "sink", Usage: "print", Action: func(*cli.Context) error { return nil }},
			{Name: "backup", Usage: "copy", Action: func(*cli.Context) error { return nil }},
			Command(),
		},
	}
}

// TestMain lets the test binary play demo: the shells under test run it
// as the program they complete.
func TestMain(m *testing.M) {
	if os.Getenv("COMPLETION_TEST_DEMO") == "1" {
		if err := demoApp().Run(os.Args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// demoOnPath puts an executable named demo (this test binary) first on a
// PATH and returns the environment to run a shell with.
func demoOnPath(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "demo")); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "COMPLETION_TEST_DEMO=1", "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func script(t *testing.T, shell string) string {
	t.Helper()
	var out bytes.Buffer
	app := demoApp()
	app.Writer = &out
	if err := app.Run([]string{"demo", "completion", shell}); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestBashCompletes: the bash script, sourced in a real bash with nothing
// else loaded, completes commands and a command's flags.
func TestBashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	path := filepath.Join(t.TempDir(), "demo.bash")
	os.WriteFile(path, []byte(script(t, "bash")), 0o600)
	env := demoOnPath(t)
	for _, tc := range []struct {
		words string // COMP_WORDS; the last is being completed
		want  string
	}{
		{"demo s", "serve sink"},
		{"demo b", "backup"},
		{"demo serve --t", "--tls-cert"},
		{"demo serve --d", "--data-dir"},
		{"demo comp", "completion"},
	} {
		words := strings.Fields(tc.words)
		if strings.HasSuffix(tc.words, " ") {
			words = append(words, "")
		}
		prog := fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _demo_complete; echo "${COMPREPLY[*]}"`,
			path, strings.Join(words, " "), len(words)-1)
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("completing %q: %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestScripts(t *testing.T) {
	zsh := script(t, "zsh")
	if !strings.HasPrefix(zsh, "#compdef demo\n") || !strings.Contains(zsh, "compdef _demo_complete demo") {
		t.Fatalf("zsh script:\n%s", zsh)
	}
	fish := script(t, "fish")
	for _, want := range []string{"complete -c demo", "-a 'serve'", "-l data-dir", "-a 'completion'"} {
		if !strings.Contains(fish, want) {
			t.Fatalf("fish script lacks %q:\n%s", want, fish)
		}
	}
	for shell, src := range map[string]string{"zsh": zsh, "fish": fish, "bash": script(t, "bash")} {
		bin, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("no %s here: its script is not syntax-checked", shell)
			continue
		}
		p := filepath.Join(t.TempDir(), "s")
		os.WriteFile(p, []byte(src), 0o600)
		if out, err := exec.Command(bin, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	app := demoApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	if _, err := Script(app, "powershell"); err == nil || !strings.Contains(err.Error(), "bash, zsh, fish") {
		t.Fatalf("unknown shell: %v", err)
	}
}
