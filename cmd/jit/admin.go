package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
	"github.com/jitssh/jitssh/sshkey"
)

func (e *env) adminCmd() *cli.Command {
	return &cli.Command{
		Name:  "admin",
		Usage: "enrol and remove users and hosts, reload policy, revoke certificates (admin role)",
		Subcommands: []*cli.Command{
			{
				Name:  "user",
				Usage: "manage enrolled users",
				Subcommands: []*cli.Command{
					{
						Name:      "add",
						Usage:     "enrol a user with their long-lived SSH public key (it can only ask for access)",
						ArgsUsage: "NAME",
						Flags: []cli.Flag{
							&cli.StringSliceFlag{Name: "key", Required: true, Usage: "public key file (repeatable)"},
							&cli.StringSliceFlag{Name: "group", Usage: "group (repeatable)"},
						},
						Action: e.runUserAdd,
					},
					{
						Name:      "remove",
						Usage:     "remove an enrolled user",
						ArgsUsage: "NAME",
						Action:    e.runUserRemove,
					},
					{
						Name:   "list",
						Usage:  "list users from the policy file and enrolled ones",
						Flags:  []cli.Flag{formatFlag()},
						Action: e.runUserList,
					},
					e.userDupsCmd(),
					e.userRemoveKeyCmd(),
				},
			},
			{
				Name:   "reload",
				Usage:  "make the daemon re-read its policy file (a bad file keeps the last good policy)",
				Action: e.runReload,
			},
			{
				Name:      "revoke",
				Usage:     "revoke a certificate by serial: the bastion refuses it at once",
				ArgsUsage: "SERIAL",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "reason", Required: true}},
				Action:    e.runRevoke,
			},
			e.adminHostCmd(),
		},
	}
}

// runUserAdd checks the key files here, so a wrong file is a usage error
// named by its path rather than the daemon's refusal.
func (e *env) runUserAdd(c *cli.Context) error {
	if err := oneArg(c, "user name"); err != nil {
		return err
	}
	var keys []string
	for _, path := range c.StringSlice("key") {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read --key: %w", err)
		}
		if _, err := sshkey.ParseAuthorized(string(b)); err != nil {
			return cli.Exit(fmt.Sprintf("--key %s: %v", path, err), exitUsage)
		}
		keys = append(keys, strings.TrimSpace(string(b)))
	}
	return e.withClient(func(cl *jitclient.Client) error {
		if err := cl.API.AddUser(c.Context, api.UserBody{Name: c.Args().First(), Groups: c.StringSlice("group"), Keys: keys}); err != nil {
			return err
		}
		linef(e.stdout, "enrolled %s", c.Args().First())
		return nil
	})
}

func (e *env) runUserRemove(c *cli.Context) error {
	if err := oneArg(c, "user name"); err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		if err := cl.API.RemoveUser(c.Context, c.Args().First()); err != nil {
			return err
		}
		linef(e.stdout, "removed %s", c.Args().First())
		return nil
	})
}

func (e *env) runUserList(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		us, err := cl.API.Users(c.Context)
		if err != nil {
			return err
		}
		return printEach(e.stdout, asJSON, us, func(u api.UserBody) string {
			return fmt.Sprintf("%-16s groups=%s keys=%d", u.Name, strings.Join(u.Groups, ","), len(u.Keys))
		})
	})
}

func (e *env) runReload(c *cli.Context) error {
	return e.withClient(func(cl *jitclient.Client) error {
		if err := cl.API.Reload(c.Context); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "policy reloaded")
		return nil
	})
}

func (e *env) runRevoke(c *cli.Context) error {
	if err := oneArg(c, "serial"); err != nil {
		return err
	}
	serial, err := strconv.ParseUint(c.Args().First(), 10, 64)
	if err != nil || serial == 0 {
		return cli.Exit(fmt.Sprintf("serial %q is not a positive number", c.Args().First()), exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		if err := cl.API.Revoke(c.Context, serial, c.String("reason")); err != nil {
			return err
		}
		linef(e.stdout, "revoked %d", serial)
		return nil
	})
}
