package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
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
					dataFlag(),
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
	path := c.Args().First()
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read host key: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return fmt.Errorf("parse host key %s: %w", path, err)
	}
	keys, err := ca.LoadKeys(daemon.Layout{Dir: c.String("data")}.CADir())
	if err != nil {
		return err
	}
	serial, err := ca.NewSerial(rand.Reader)
	if err != nil {
		return err
	}
	cert, err := ca.SignHostCert(keys.Host, pub, c.StringSlice("principal"), c.Duration("valid"), time.Now(), serial)
	if err != nil {
		return err
	}
	out := strings.TrimSuffix(path, ".pub") + "-cert.pub"
	if err := os.WriteFile(out, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (principals %s); add to sshd_config: HostCertificate %s\n", out, strings.Join(cert.ValidPrincipals, ","), filepath.Clean(out))
	return nil
}
