package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/grant"
)

func userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "enrol users directly in the data directory (how the first admin gets in)",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "enrol NAME with a public key",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					dataFlag(), storeFlag(),
					&cli.StringSliceFlag{Name: "key", Required: true, Usage: "public key file (repeatable)"},
					&cli.StringSliceFlag{Name: "group", Usage: "group (repeatable)"},
				},
				Action: runUserAdd,
			},
		},
	}
}

// runUserAdd is jitd user add: it enrols a user straight into the data
// directory's store, audited with the operator as actor.
func runUserAdd(c *cli.Context) error {
	stdout := c.App.Writer
	if c.NArg() != 1 {
		return cli.Exit("give one user name", 2)
	}
	var keys []string
	for _, path := range c.StringSlice("key") {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read --key: %w", err)
		}
		keys = append(keys, string(b))
	}
	e := grant.Enrolment{Name: c.Args().First(), Groups: c.StringSlice("group"), Keys: keys, Via: "jitd user add"}
	if err := layout(c).EnrolUser(c.Context, e); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled %s (a running jitd picks this up within seconds)\n", c.Args().First())
	return nil
}
