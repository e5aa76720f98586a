// Command jitd is the jitssh daemon: the CA's HTTPS API and the recording
// bastion, backed by an audit store and a policy file in one data directory.
//
// Each command is in its own file with a named run function; this file
// holds the app and main, which turns SIGINT and SIGTERM into a cancelled
// context and errors into exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/cmd/internal/argorder"
	"github.com/jitssh/jitssh/cmd/internal/usage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp(os.Stdout, os.Stderr)
	usageErrs := usage.Install(app, 2)
	err := app.RunContext(ctx, argorder.Reorder(app, os.Args))
	if err == nil {
		err = usageErrs.Err()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jitd: error:", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// dataFlag is the --data flag every command takes. It is made afresh for
// each command because urfave/cli records parse state in flag values.
func dataFlag() cli.Flag {
	return &cli.StringFlag{Name: "data", Value: "./data", EnvVars: []string{"JITD_DATA"}, Usage: "data directory"}
}

// newApp is jitd's command tree; commands write to stdout and stderr
// through c.App.Writer and c.App.ErrWriter.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "jitd",
		Usage:           "jitssh daemon: a CA for minutes-long SSH certificates and a recording bastion",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Repeatable flags take one value per use (key files' paths may
		// hold a comma).
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {},
		Commands:                  []*cli.Command{initCommand(), serveCommand(), userCommand(), hostCommand(), migrateCommand(), storeCommand(), replicaCommand()},
	}
}
