// Package argorder lets the jit and jitd command lines take flags after
// positional arguments (`jit request web1 --login deploy`), which
// urfave/cli v2 does not: it stops reading flags at the first argument.
package argorder

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Reorder returns args with the flags of the command that args select moved
// in front of that command's positional arguments. Everything after "--"
// stays where it is, so `jit ssh host -- ls -l` keeps "-l" for ssh.
func Reorder(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds := app.Commands
	flags := app.Flags
	i := 1
	// Walk down the command path: leading flags of each level stay in
	// place, a word naming a subcommand descends.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
			i++
			continue
		}
		sub := find(cmds, a)
		if sub == nil {
			// Not a command this program knows: leave the rest for urfave to
			// report.
			return append(out, args[i:]...)
		}
		out = append(out, a)
		cmds, flags = sub.Subcommands, sub.Flags
		i++
		if len(cmds) == 0 {
			break
		}
	}
	var lead, positional []string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			lead = append(lead, a)
			if takesValue(flags, a) && i+1 < len(args) {
				lead = append(lead, args[i+1])
				i++
			}
		} else {
			positional = append(positional, a)
		}
		i++
	}
	out = append(out, lead...)
	return append(out, positional...)
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag named by arg ("--login" or "-l",
// without "=value") needs the next argument as its value.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if bf, ok := f.(*cli.BoolFlag); ok && bf != nil {
				return false
			}
			return true
		}
	}
	return false
}
