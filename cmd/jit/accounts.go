package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

// accountFlags are jit hosts' admin view of ephemeral accounts.
func accountFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "accounts", Usage: "admins: instead, the ephemeral accounts not yet removed, stuck removals first"},
		&cli.BoolFlag{Name: "all", Usage: "with --accounts: removed ones too"},
	}
}

// runAccounts prints GET /v1/admin/accounts, one line per account.
func (e *env) runAccounts(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		list, err := cl.API.AdminAccounts(c.Context, c.Bool("all"))
		if err != nil {
			return err
		}
		if len(list) == 0 && !asJSON {
			fmt.Fprintln(e.stderr, "no ephemeral accounts")
		}
		return printEach(e.stdout, asJSON, list, accountLine)
	})
}

// accountLine is one account: where, whose, its state and, for a removal
// that keeps failing, how often, when next and why.
func accountLine(a api.EphemeralAccount) string {
	line := fmt.Sprintf("%-20s %-32s uid=%-6d %-9s user=%s request=%s", a.Host, a.Login, a.UID, a.State, a.User, a.RequestID)
	if a.Attempts > 0 {
		line += fmt.Sprintf(" attempts=%d", a.Attempts)
	}
	if a.NextAttempt != nil {
		line += " next=" + a.NextAttempt.UTC().Format(time.RFC3339)
	}
	if a.LastError != "" {
		line += fmt.Sprintf(" error=%q", a.LastError)
	}
	return line
}
