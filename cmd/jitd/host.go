package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/daemon"
)

func hostCommand() *cli.Command {
	return &cli.Command{
		Name:  "host",
		Usage: "certify a target's host key with the host CA, so engineers and the bastion never trust on first use",
		Subcommands: []*cli.Command{
			{
				Name:      "certify",
				Usage:     "write KEY-cert.pub beside a host public key",
				ArgsUsage: "HOST_KEY.pub",
				Flags: []cli.Flag{
					dataFlag(), storeFlag(),
					&cli.StringSliceFlag{Name: "principal", Required: true, Usage: "host name as in the policy inventory, and its address (repeatable)"},
					&cli.DurationFlag{Name: "valid", Value: 30 * 24 * time.Hour, Usage: "certificate lifetime"},
				},
				Action: runHostCertify,
			},
		},
	}
}

// runHostCertify is jitd host certify: it writes KEY-cert.pub beside a
// target's host public key.
func runHostCertify(c *cli.Context) error {
	stdout := c.App.Writer
	if c.NArg() != 1 {
		return cli.Exit("give one host public key file", 2)
	}
	return certifyHost(c, stdout)
}

func certifyHost(c *cli.Context, stdout io.Writer) error {
	cert, out, err := layout(c).CertifyHostKey(c.Context, daemon.HostCertRequest{
		KeyPath: c.Args().First(), Principals: c.StringSlice("principal"), ValidFor: c.Duration("valid")}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (principals %s); add to sshd_config: HostCertificate %s\n", out, strings.Join(cert.ValidPrincipals, ","), filepath.Clean(out))
	return nil
}
