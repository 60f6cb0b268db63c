package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestCompletion: `agentd completion bash|zsh|fish` prints a script for
// agentd, and agentd answers completion requests with its commands.
func TestCompletion(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		if err := app.Run(append([]string{"agentd"}, args...)); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	for shell, want := range map[string]string{
		"bash": "-F _agentd_complete agentd",
		"zsh":  "#compdef agentd",
		"fish": "complete -c agentd",
	} {
		if s := run("completion", shell); !strings.Contains(s, want) {
			t.Errorf("completion %s lacks %q:\n%s", shell, want, s)
		}
	}
	if fish := run("completion", "fish"); !strings.Contains(fish, "-l tunnel") || !strings.Contains(fish, "'join'") {
		t.Errorf("fish completion lacks join --tunnel:\n%s", fish)
	}
	// urfave/cli reads os.Args to tell flag completion from command
	// completion; make them what a shell would pass.
	saved := os.Args
	os.Args = []string{"agentd", "--generate-bash-completion"}
	defer func() { os.Args = saved }()
	got := strings.Fields(run("--generate-bash-completion"))
	for _, c := range []string{"join", "version", "completion"} {
		if !slices.Contains(got, c) {
			t.Errorf("commands offered: %v, missing %s", got, c)
		}
	}
}
