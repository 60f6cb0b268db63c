package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// PermuteArgs moves the flags of a client command in front of its
// positional arguments, so `destinations create app --url X` works:
// urfave/cli stops reading flags at the first argument, and would
// otherwise take --url for a second argument and create app without a URL.
// args is os.Args; commands other than these are returned unchanged.
func PermuteArgs(args []string) []string {
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	for _, c := range Commands(nil) {
		if c.Name == args[1] {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	head := 2
	if len(cmd.Subcommands) > 0 {
		if len(args) < 3 {
			return args
		}
		var sub *cli.Command
		for _, s := range cmd.Subcommands {
			if s.Name == args[2] || contains(s.Aliases, args[2]) {
				sub = s
			}
		}
		if sub == nil {
			return args
		}
		cmd, head = sub, 3
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	out := append([]string(nil), args[:head]...)
	var positional []string
	rest := args[head:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		out = append(out, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && i+1 < len(rest) {
			out = append(out, rest[i+1])
			i++
		}
	}
	return append(out, positional...)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
