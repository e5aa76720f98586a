package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/hostaccount"
)

// hostAccountHelp says where the command runs and what it answers.
const hostAccountHelp = `The force-command of jitd's provisioning login (installed by jit host join
as ` + api.AccountHelperPath + `): sshd puts the operation the bastion asked
for in SSH_ORIGINAL_COMMAND, exactly one of create, remove, reap and list; the
request is one JSON object on stdin, the answer one JSON object on stdout
(exit 0 when it is ok, 1 when not, 2 when the operation itself is refused).
It only ever touches accounts it made: those in ` + api.AccountStateDir + `/` + api.AccountStateFile + `
and in the group ` + api.AccountManagedGroup + `. Root may run it by hand with
--op (e.g. jit host account --op list <<< '{}'); outside sshd's force-command
and without --op it refuses to run.`

func (e *env) hostAccountCmd() *cli.Command {
	return &cli.Command{
		Name:        "account",
		Usage:       "create, remove, reap or list this host's ephemeral accounts (the provisioning login's force-command, run as root)",
		Description: hostAccountHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "op", Usage: "run OP (create, remove, reap or list) by hand, as root, instead of SSH_ORIGINAL_COMMAND"},
		},
		Action: e.runHostAccount,
	}
}

// runHostAccount takes the operation from --op (root by hand) or from
// SSH_ORIGINAL_COMMAND when sshd runs it as a forced command (SSH_CONNECTION
// is set too); anything else is refused before stdin is read.
func (e *env) runHostAccount(c *cli.Context) error {
	op, why := c.String("op"), ""
	_, inSSH := os.LookupEnv("SSH_CONNECTION")
	original, forced := os.LookupEnv("SSH_ORIGINAL_COMMAND")
	switch {
	case c.NArg() != 0:
		why = "jit host account takes no arguments; the operation comes from SSH_ORIGINAL_COMMAND or --op"
	case os.Geteuid() != 0:
		why = fmt.Sprintf("jit host account runs as root (uid %d here)", os.Geteuid())
	case c.IsSet("op"):
	case inSSH && forced:
		op = original
	default:
		why = "jit host account runs as sshd's force-command of the provisioning login (SSH_ORIGINAL_COMMAND), or by root with --op"
	}
	if why != "" {
		ans := api.AccountAnswer{Code: api.AccountCodeBadRequest, Error: why}
		if err := json.NewEncoder(e.stdout).Encode(ans); err != nil {
			return err
		}
		return cli.Exit(why, api.AccountExitUsage)
	}
	if code := hostaccount.Run(c.Context, op, e.stdin, e.stdout, hostaccount.Options{}); code != 0 {
		return cli.Exit("", code)
	}
	return nil
}
