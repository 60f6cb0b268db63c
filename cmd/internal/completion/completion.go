// Package completion gives both command-line programs (webhookops and
// agentd) a `completion bash|zsh|fish` command. The bash and zsh scripts
// ask the program itself for candidates (urfave/cli's
// --generate-bash-completion, so the app must set EnableBashCompletion);
// the fish script is generated from the command tree. The scripts need
// nothing but the shell: no bash-completion package, no eval of what the
// user typed.
//
// It imports only urfave/cli, so agentd can use it and stay small.
package completion

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shells are the shells a script can be printed for.
var Shells = []string{"bash", "zsh", "fish"}

// Command is `completion SHELL`.
func Command() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash:  source <(PROG completion bash)      (or save it to /etc/bash_completion.d/PROG)\n" +
			"zsh:   PROG completion zsh > \"${fpath[1]}/_PROG\"\n" +
			"fish:  PROG completion fish > ~/.config/fish/completions/PROG.fish",
		Action: func(c *cli.Context) error {
			script, err := Script(c.App, c.Args().First())
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

// Script returns the completion script of app for shell.
func Script(app *cli.App, shell string) (string, error) {
	name := app.Name
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(name) + "_complete"
	switch shell {
	case "bash":
		return strings.NewReplacer("PROG", name, "FUNC", fn).Replace(bashScript), nil
	case "zsh":
		return strings.NewReplacer("PROG", name, "FUNC", fn).Replace(zshScript), nil
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return "", err
		}
		return s, nil
	default:
		return "", fmt.Errorf("completion: shell %q: choose one of %s", shell, strings.Join(Shells, ", "))
	}
}

const bashScript = `# bash completion for PROG; load with: source <(PROG completion bash)
FUNC() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F FUNC PROG
`

const zshScript = `#compdef PROG
# zsh completion for PROG; install with: PROG completion zsh > "${fpath[1]}/_PROG"
FUNC() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    compadd -a opts
  else
    _files
  fi
}
compdef FUNC PROG
`
