package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

func (e *env) requestsCmd() *cli.Command {
	return &cli.Command{
		Name:  "requests",
		Usage: "list your requests, the ones waiting for your approval (--pending), or break-glass ones (--break-glass)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "pending", Usage: "pending requests you may approve"},
			&cli.BoolFlag{Name: "break-glass", Usage: "every break-glass request, for review (admin or auditor)"},
			formatFlag(),
		},
		Action: e.runRequests,
	}
}

func (e *env) runRequests(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	rs, err := cl.API.Requests(c.Context, c.Bool("pending"), c.Bool("break-glass"))
	if err != nil {
		return err
	}
	err = printEach(e.stdout, asJSON, rs, func(r api.Request) string {
		flag := ""
		if r.BreakGlass {
			flag = " BREAK-GLASS"
		}
		return fmt.Sprintf("%s  %-9s %-8s %s@%s  %s  %q%s", r.ID, r.State, r.User, r.Login, r.Host, r.CreatedAt.Local().Format(time.DateTime), r.Reason, flag)
	})
	if err != nil {
		return err
	}
	if len(rs) == 0 && !asJSON {
		fmt.Fprintln(e.stderr, "no requests")
	}
	return nil
}

// decision is what approve, deny and cancel do to one request.
type decision func(cl *api.Client, ctx context.Context, id, reason string) (api.RequestResponse, error)

func (e *env) approveCmd() *cli.Command {
	return e.decisionCmd("approve", "approve a pending request (never your own)", false, (*api.Client).Approve)
}

func (e *env) denyCmd() *cli.Command {
	return e.decisionCmd("deny", "deny a pending request", true, (*api.Client).Deny)
}

func (e *env) decisionCmd(name, usage string, reasonRequired bool, op decision) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "REQUEST_ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Required: reasonRequired, Usage: "why"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error { return e.runDecision(c, op) },
	}
}

func (e *env) cancelCmd() *cli.Command {
	cancel := func(cl *api.Client, ctx context.Context, id, _ string) (api.RequestResponse, error) {
		return cl.Cancel(ctx, id)
	}
	return &cli.Command{
		Name:      "cancel",
		Usage:     "withdraw your pending or approved request",
		ArgsUsage: "REQUEST_ID",
		Flags:     []cli.Flag{formatFlag()},
		Action:    func(c *cli.Context) error { return e.runDecision(c, cancel) },
	}
}

// runDecision applies op to the one request named and prints its new
// state.
func (e *env) runDecision(c *cli.Context, op decision) error {
	if err := oneArg(c, "request id"); err != nil {
		return err
	}
	cl, err := e.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := op(cl.API, c.Context, c.Args().First(), c.String("reason"))
	if err != nil {
		return err
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	r := res.Request
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	linef(e.stdout, "%s is %s (%d/%d approvals)", r.ID, r.State, jitclient.CountApproved(r.Approvals), r.ApprovalsNeeded)
	return nil
}
