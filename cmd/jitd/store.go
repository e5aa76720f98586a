package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/daemon"
)

// storeFlag is the --store flag of the commands that open the audit store.
func storeFlag() cli.Flag {
	return &cli.StringFlag{Name: "store", EnvVars: []string{"JITD_STORE"},
		Usage: "audit store: a postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=... `URL` (docs/scale-out.md); empty: the SQLite file in the data directory"}
}

// layout is the data directory and store the command was given.
func layout(c *cli.Context) daemon.Layout {
	return daemon.Layout{Dir: c.String("data"), Store: c.String("store")}
}

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:   "migrate",
		Usage:  "apply the audit store's pending schema migrations and exit (jitd serve applies them too)",
		Flags:  []cli.Flag{dataFlag(), storeFlag()},
		Action: runMigrate,
	}
}

func runMigrate(c *cli.Context) error {
	l := layout(c)
	if err := l.Migrate(c.Context); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "audit store %s is up to date\n", storeName(l))
	return nil
}

// storeName is the store for messages, without a password.
func storeName(l daemon.Layout) string {
	if l.Store == "" {
		return l.Database()
	}
	return daemon.RedactedURL(l.Store)
}

func storeCommand() *cli.Command {
	return &cli.Command{
		Name:  "store",
		Usage: "move the audit store",
		Subcommands: []*cli.Command{{
			Name:  "copy",
			Usage: "copy a SQLite store (jitd stopped) into an empty PostgreSQL database and verify the copy",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "from", Required: true, Usage: "the data `DIR` (or its jitssh.db file) to copy"},
				&cli.StringFlag{Name: "to", Required: true, EnvVars: []string{"JITD_STORE"}, Usage: "the empty PostgreSQL database's postgres:// `URL`"},
			},
			Action: runStoreCopy,
		}},
	}
}

func runStoreCopy(c *cli.Context) error {
	res, vr, err := daemon.CopyStore(c.Context, c.String("from"), c.String("to"))
	if err != nil {
		return err
	}
	w := c.App.Writer
	for _, t := range res.Tables {
		fmt.Fprintf(w, "copied %-20s %d rows\n", t.Table, t.Rows)
	}
	fmt.Fprintf(w, "matches the source: every table's rows and their values, %d events, head %s\n", res.Events, res.Head)
	fmt.Fprintf(w, "verified: %d events, head %s, %d checkpoints, %d recordings\n", vr.Events, vr.Head, vr.Checkpoints, vr.Recordings)
	for _, id := range vr.Lost {
		fmt.Fprintf(w, "recording lost: session %s (end reason recording_lost)\n", id)
	}
	return nil
}
