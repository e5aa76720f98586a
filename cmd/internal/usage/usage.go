// Package usage makes every usage mistake on a urfave/cli v2 command line
// end with one documented exit code. Left alone, urfave/cli reports a bad
// flag of a subcommand and a missing required flag as plain errors (exit 1
// for the caller) and an unknown command as exit 3, which jit documents as
// "denied".
package usage

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
)

// Tracker holds the unknown command, if any, seen during one run of an app:
// urfave/cli's CommandNotFound hook cannot return an error itself.
type Tracker struct {
	code int

	mu       sync.Mutex
	notFound error
}

// Install sets the OnUsageError of app and of every command under it, and
// app's CommandNotFound, so that usage errors are cli.ExitCoders with code.
// Hooks already set are kept. Required flags of the common types are
// checked by the command's action instead of by urfave/cli, so that a
// missing one is a usage error too. After the run, Err reports an unknown
// command.
func Install(app *cli.App, code int) *Tracker {
	t := &Tracker{code: code}
	onUsage := func(c *cli.Context, err error, _ bool) error {
		return cli.Exit(fmt.Sprintf("%v (see %s --help)", err, commandPath(c)), code)
	}
	if app.OnUsageError == nil {
		app.OnUsageError = onUsage
	}
	if app.CommandNotFound == nil {
		app.CommandNotFound = func(c *cli.Context, name string) {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.notFound = cli.Exit(fmt.Sprintf("unknown command %q (see %s --help)", name, commandPath(c)), code)
		}
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = onUsage
			}
			checkRequired(c, code)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return t
}

// Err returns the unknown-command error of the run as a cli.ExitCoder with
// the installed code, or nil if every command was known.
func (t *Tracker) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notFound
}

// commandPath is the command line that c runs, such as "jit admin user add".
func commandPath(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" && (len(names) == 0 || names[len(names)-1] != ctx.Command.Name) {
			names = append(names, ctx.Command.Name)
		}
	}
	if c.App != nil && (len(names) == 0 || names[len(names)-1] != c.App.Name) {
		names = append(names, c.App.Name)
	}
	slices.Reverse(names)
	return strings.Join(names, " ")
}

// checkRequired moves the check of c's required flags into its action,
// where a missing flag can end with code. urfave/cli's own check returns
// an error of an unexported type that callers cannot tell from others.
func checkRequired(c *cli.Command, code int) {
	if c.Action == nil {
		return
	}
	var required []string
	for _, f := range c.Flags {
		var req *bool
		switch f := f.(type) {
		case *cli.StringFlag:
			req = &f.Required
		case *cli.StringSliceFlag:
			req = &f.Required
		case *cli.DurationFlag:
			req = &f.Required
		case *cli.IntFlag:
			req = &f.Required
		case *cli.Uint64Flag:
			req = &f.Required
		}
		if req != nil && *req {
			*req = false
			required = append(required, f.Names()[0])
		}
	}
	if len(required) == 0 {
		return
	}
	action := c.Action
	c.Action = func(ctx *cli.Context) error {
		for _, name := range required {
			if !ctx.IsSet(name) {
				return cli.Exit(fmt.Sprintf("--%s is required (see %s --help)", name, commandPath(ctx)), code)
			}
		}
		return action(ctx)
	}
}
