package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

// adminHostCmd is jit admin host: join tokens, the inventory and removal.
func (e *env) adminHostCmd() *cli.Command {
	return &cli.Command{
		Name:  "host",
		Usage: "enrol target hosts with one-time join tokens, list and remove them",
		Subcommands: []*cli.Command{
			{
				Name:      "token",
				Usage:     "make a one-time join token for a host and print the jit host join line to run on it",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "address", Required: true, Usage: "host:port the bastion dials"},
					&cli.StringSliceFlag{Name: "label", Usage: "label key=value (repeatable)"},
					&cli.StringFlag{Name: "ttl", Value: "1h", Usage: "how long the token may wait to be used (at most 24h)"},
				},
				Action: e.runHostToken,
			},
			{
				Name:  "list",
				Usage: "list the inventory: enrolled hosts and those of the policy file",
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "expiring", Usage: "only enrolled hosts whose certificate expires within this (72h)"},
					formatFlag(),
				},
				Action: e.runHostList,
			},
			{
				Name:      "remove",
				Usage:     "remove an enrolled host: revoke its host certificate and every certificate for it, ending its sessions",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "reason", Required: true}},
				Action:    e.runHostRemove,
			},
		},
	}
}

// parseLabels reads --label k=v values.
func parseLabels(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, cli.Exit(fmt.Sprintf("--label %q is not key=value", v), exitUsage)
		}
		if _, dup := out[k]; dup {
			return nil, cli.Exit(fmt.Sprintf("--label %q given twice", k), exitUsage)
		}
		out[k] = val
	}
	return out, nil
}

func (e *env) runHostToken(c *cli.Context) error {
	if err := oneArg(c, "host name"); err != nil {
		return err
	}
	labels, err := parseLabels(c.StringSlice("label"))
	if err != nil {
		return err
	}
	if _, err := time.ParseDuration(c.String("ttl")); err != nil {
		return cli.Exit(fmt.Sprintf("--ttl %q is not a duration such as 1h", c.String("ttl")), exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		tok, err := cl.API.CreateHostToken(c.Context, api.HostTokenRequest{Name: c.Args().First(), Address: c.String("address"),
			Labels: labels, TTL: c.String("ttl")})
		if err != nil {
			return err
		}
		linef(e.stdout, "join token for %s (single use, expires %s):", tok.Host, tok.ExpiresAt.Format(time.RFC3339))
		linef(e.stdout, "%s", tok.Token)
		linef(e.stdout, "run on the host, as root:")
		// In the environment, not on the command line: argv is readable by
		// every local user (ps), who could spend the token first.
		linef(e.stdout, "  JIT_JOIN_TOKEN=%s jit host join --ca %s --fingerprint %s", tok.Token, cl.Config.CA, cl.Config.Fingerprint)
		return nil
	})
}

func (e *env) runHostList(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	if c.Duration("expiring") < 0 {
		return cli.Exit("--expiring must be positive", exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		hosts, err := cl.API.AdminHosts(c.Context, c.Duration("expiring"))
		if err != nil {
			return err
		}
		return printEach(e.stdout, asJSON, hosts, hostLine)
	})
}

// hostLine is one host of jit admin host list.
func hostLine(h api.HostRecord) string {
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
		labels = append(labels, k+"="+h.Labels[k])
	}
	line := fmt.Sprintf("%-20s %-22s %-6s labels=%s", h.Name, h.Address, h.Source, strings.Join(labels, ","))
	if !h.CertExpiresAt.IsZero() {
		line += " cert_expires=" + h.CertExpiresAt.UTC().Format(time.RFC3339)
	}
	if !h.LastSeen.IsZero() {
		line += " last_seen=" + h.LastSeen.UTC().Format(time.RFC3339)
	}
	return line
}

func (e *env) runHostRemove(c *cli.Context) error {
	if err := oneArg(c, "host name"); err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		if err := cl.API.RemoveHost(c.Context, c.Args().First(), c.String("reason")); err != nil {
			return err
		}
		linef(e.stdout, "removed %s: its host certificate and the certificates for it are revoked", c.Args().First())
		return nil
	})
}
