package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
)

func (e *env) auditCmd() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "list and verify the audit trail (auditor or admin role)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list audit events in order; --format json gives NDJSON for SIEMs",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "user"}, &cli.StringFlag{Name: "host"},
					&cli.StringFlag{Name: "event", Usage: "event type, or a prefix ending in a dot (request.)"},
					&cli.StringFlag{Name: "since", Usage: "RFC 3339 time or a duration back from now (2h)"},
					&cli.StringFlag{Name: "until"},
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming new events"},
					formatFlag,
				},
				Action: func(c *cli.Context) error {
					asJSON, err := jsonOutput(c)
					if err != nil {
						return err
					}
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					q := api.EventQuery{User: c.String("user"), Host: c.String("host"), Event: c.String("event"), Since: c.String("since"), Until: c.String("until"), Limit: 10000}
					enc := json.NewEncoder(e.stdout)
					for {
						evs, err := client.Events(c.Context, q)
						if err != nil {
							if c.Context.Err() != nil {
								return nil
							}
							return err
						}
						for _, ev := range evs {
							q.After = ev.Seq
							if asJSON {
								if err := enc.Encode(ev); err != nil {
									return err
								}
								continue
							}
							fmt.Fprintln(e.stdout, formatEvent(ev))
						}
						// A full page may have more behind it, with or
						// without --follow.
						if len(evs) == q.Limit {
							continue
						}
						if !c.Bool("follow") {
							return nil
						}
						select {
						case <-c.Context.Done():
							return nil
						case <-time.After(time.Second):
						}
					}
				},
			},
			{
				Name:  "verify",
				Usage: "check the hash chain, the signed checkpoints and every finished recording",
				Flags: []cli.Flag{formatFlag},
				Action: func(c *cli.Context) error {
					asJSON, err := jsonOutput(c)
					if err != nil {
						return err
					}
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					v, err := client.Verify(c.Context)
					if err != nil {
						return err
					}
					if asJSON {
						if err := json.NewEncoder(e.stdout).Encode(v); err != nil {
							return err
						}
					} else if v.OK {
						fmt.Fprintf(e.stdout, "ok: %d events, %d checkpoints, %d recordings verified; head %s\n", v.Events, v.Checkpoints, v.Recordings, v.Head)
					}
					if !v.OK {
						where := ""
						if v.FirstBad != 0 {
							where = fmt.Sprintf(" at event %d", v.FirstBad)
						}
						if v.BadSession != "" {
							where = " in session " + v.BadSession
						}
						return cli.Exit(fmt.Sprintf("audit trail broken%s: %s", where, v.Problem), exitError)
					}
					return nil
				},
			},
		},
	}
}

func formatEvent(ev api.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6d %s %-20s %-22s", ev.Seq, ev.Time.Local().Format(time.DateTime), ev.Event, ev.Code)
	if ev.User != "" {
		fmt.Fprintf(&b, " user=%s", ev.User)
	}
	if ev.Actor != "" && ev.Actor != ev.User {
		fmt.Fprintf(&b, " actor=%s", ev.Actor)
	}
	if ev.Login != "" || ev.Host != "" {
		fmt.Fprintf(&b, " target=%s@%s", ev.Login, ev.Host)
	}
	if ev.RequestID != "" {
		fmt.Fprintf(&b, " request=%s", ev.RequestID)
	}
	if ev.SessionID != "" {
		fmt.Fprintf(&b, " sid=%s", ev.SessionID)
	}
	if ev.Serial != 0 {
		fmt.Fprintf(&b, " serial=%d", ev.Serial)
	}
	if ev.Message != "" {
		fmt.Fprintf(&b, " %q", ev.Message)
	}
	return b.String()
}

func (e *env) adminCmd() *cli.Command {
	return &cli.Command{
		Name:  "admin",
		Usage: "enrol and remove users, reload policy, revoke certificates (admin role)",
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
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return cli.Exit("give one user name", exitUsage)
							}
							var keys []string
							for _, path := range c.StringSlice("key") {
								b, err := os.ReadFile(path)
								if err != nil {
									return fmt.Errorf("read --key: %w", err)
								}
								if _, err := ca.ParseRequestKey(string(b)); err != nil {
									return cli.Exit(fmt.Sprintf("--key %s: %v", path, err), exitUsage)
								}
								keys = append(keys, strings.TrimSpace(string(b)))
							}
							client, _, _, err := e.client()
							if err != nil {
								return err
							}
							defer client.Close()
							if err := client.AddUser(c.Context, api.UserBody{Name: c.Args().First(), Groups: c.StringSlice("group"), Keys: keys}); err != nil {
								return err
							}
							fmt.Fprintf(e.stdout, "enrolled %s\n", c.Args().First())
							return nil
						},
					},
					{
						Name:      "remove",
						Usage:     "remove an enrolled user",
						ArgsUsage: "NAME",
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return cli.Exit("give one user name", exitUsage)
							}
							client, _, _, err := e.client()
							if err != nil {
								return err
							}
							defer client.Close()
							if err := client.RemoveUser(c.Context, c.Args().First()); err != nil {
								return err
							}
							fmt.Fprintf(e.stdout, "removed %s\n", c.Args().First())
							return nil
						},
					},
					{
						Name:  "list",
						Usage: "list users from the policy file and enrolled ones",
						Flags: []cli.Flag{formatFlag},
						Action: func(c *cli.Context) error {
							asJSON, err := jsonOutput(c)
							if err != nil {
								return err
							}
							client, _, _, err := e.client()
							if err != nil {
								return err
							}
							defer client.Close()
							us, err := client.Users(c.Context)
							if err != nil {
								return err
							}
							return printEach(e.stdout, asJSON, us, func(u api.UserBody) string {
								return fmt.Sprintf("%-16s groups=%s keys=%d", u.Name, strings.Join(u.Groups, ","), len(u.Keys))
							})
						},
					},
				},
			},
			{
				Name:  "reload",
				Usage: "make the daemon re-read its policy file (a bad file keeps the last good policy)",
				Action: func(c *cli.Context) error {
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					if err := client.Reload(c.Context); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, "policy reloaded")
					return nil
				},
			},
			{
				Name:      "revoke",
				Usage:     "revoke a certificate by serial: the bastion refuses it at once",
				ArgsUsage: "SERIAL",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "reason", Required: true}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("give one serial", exitUsage)
					}
					serial, err := strconv.ParseUint(c.Args().First(), 10, 64)
					if err != nil || serial == 0 {
						return cli.Exit(fmt.Sprintf("serial %q is not a positive number", c.Args().First()), exitUsage)
					}
					client, _, _, err := e.client()
					if err != nil {
						return err
					}
					defer client.Close()
					if err := client.Revoke(c.Context, serial, c.String("reason")); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "revoked %d\n", serial)
					return nil
				},
			},
		},
	}
}

func (e *env) krlCmd() *cli.Command {
	return &cli.Command{
		Name:  "krl",
		Usage: "write the key revocation list of revoked user certificates, for sshd's RevokedKeys",
		Flags: []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "file to write"}},
		Action: func(c *cli.Context) error {
			client, _, _, err := e.client()
			if err != nil {
				return err
			}
			defer client.Close()
			krl, err := client.KRL(c.Context)
			if err != nil {
				return err
			}
			// Replace atomically: sshd refuses every certificate while its
			// RevokedKeys file is unreadable or torn.
			path := c.String("output")
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, krl, 0o644); err != nil {
				return fmt.Errorf("write KRL: %w", err)
			}
			if err := os.Rename(tmp, path); err != nil {
				return fmt.Errorf("write KRL: %w", err)
			}
			fmt.Fprintf(e.stderr, "wrote %s (%d bytes)\n", path, len(krl))
			return nil
		},
	}
}
