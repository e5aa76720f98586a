package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func (e *env) krlCmd() *cli.Command {
	return &cli.Command{
		Name:   "krl",
		Usage:  "write the key revocation list of revoked user and target certificates, for sshd's RevokedKeys",
		Flags:  []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "file to write"}},
		Action: e.runKRL,
	}
}

// runKRL reports on stderr, so that a cron job's stdout stays empty.
func (e *env) runKRL(c *cli.Context) error {
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	path := c.String("output")
	n, err := cl.WriteKRL(c.Context, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s (%d bytes)\n", path, n)
	return nil
}
