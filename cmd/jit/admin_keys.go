package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
)

func (e *env) userDupsCmd() *cli.Command {
	return &cli.Command{
		Name:   "dups",
		Usage:  "list public keys that more than one user holds (such a key logs nobody in)",
		Flags:  []cli.Flag{formatFlag()},
		Action: e.runUserDups,
	}
}

func (e *env) userRemoveKeyCmd() *cli.Command {
	return &cli.Command{
		Name:      "remove-key",
		Usage:     "remove one key (by its SHA256: fingerprint) from an enrolled user",
		ArgsUsage: "NAME FINGERPRINT",
		Action:    e.runUserRemoveKey,
	}
}

func (e *env) runUserDups(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	dups, err := cl.API.KeyDuplicates(c.Context)
	if err != nil {
		return err
	}
	if len(dups) == 0 && !asJSON {
		fmt.Fprintln(e.stdout, "no key is held by more than one user")
		return nil
	}
	return printEach(e.stdout, asJSON, dups, func(d api.KeyDuplicate) string {
		return fmt.Sprintf("%s users=%s", d.Fingerprint, strings.Join(d.Users, ","))
	})
}

func (e *env) runUserRemoveKey(c *cli.Context) error {
	if c.NArg() != 2 {
		return cli.Exit("give a user name and a key fingerprint (SHA256:...)", exitUsage)
	}
	name, fp := c.Args().Get(0), c.Args().Get(1)
	if !strings.HasPrefix(fp, "SHA256:") {
		return cli.Exit(fmt.Sprintf("fingerprint %q: want SHA256:... as `jit admin user dups` or ssh-keygen -lf shows it", fp), exitUsage)
	}
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.API.RemoveKey(c.Context, name, fp); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed key %s from %s\n", fp, name)
	return nil
}
