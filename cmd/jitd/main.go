// Command jitd is the jitssh daemon: the CA's HTTPS API and the recording
// bastion, backed by an audit store and a policy file in one data directory.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/cmd/internal/argorder"
	"github.com/jitssh/jitssh/cmd/internal/usage"
	"github.com/jitssh/jitssh/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp(os.Stdout, os.Stderr)
	usageErrs := usage.Install(app, 2)
	err := app.RunContext(ctx, argorder.Reorder(app, os.Args))
	if err == nil {
		err = usageErrs.Err()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jitd: error:", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

var dataFlag = &cli.StringFlag{Name: "data", Value: "./data", EnvVars: []string{"JITD_DATA"}, Usage: "data directory"}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "jitd",
		Usage:           "jitssh daemon: a CA for minutes-long SSH certificates and a recording bastion",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:  "init",
				Usage: "create the data directory: CA keys, TLS certificate, database and a demo policy (never overwrites)",
				Flags: []cli.Flag{
					dataFlag,
					&cli.StringFlag{Name: "algorithm", Value: "ed25519", Usage: "CA key algorithm: ed25519, ecdsa-p256, ecdsa-p384, rsa-3072, rsa-4096"},
					&cli.StringSliceFlag{Name: "tls-host", Value: cli.NewStringSlice("127.0.0.1", "localhost"), Usage: "names and addresses in the API's TLS certificate"},
				},
				Action: func(c *cli.Context) error {
					alg, err := ca.ParseAlgorithm(c.String("algorithm"))
					if err != nil {
						return err
					}
					res, err := daemon.Init(c.Context, c.String("data"), alg, c.StringSlice("tls-host"), time.Now())
					if err != nil {
						return err
					}
					res.Print(stdout)
					return nil
				},
			},
			{
				Name:  "serve",
				Usage: "serve the HTTPS API and, with --bastion, the recording bastion",
				Flags: []cli.Flag{
					dataFlag,
					&cli.StringFlag{Name: "api", Value: "127.0.0.1:7443", Usage: "API listen address"},
					&cli.StringFlag{Name: "bastion", Usage: "bastion listen address, e.g. 127.0.0.1:2222 (empty: no bastion)"},
					&cli.StringSliceFlag{Name: "egress", Usage: "bastion source addresses towards targets, as CIDRs (source-address of target certificates)"},
					&cli.StringSliceFlag{Name: "webhook", Usage: "webhook URL for request notifications (repeatable)"},
					&cli.StringFlag{Name: "webhook-secret", EnvVars: []string{"JITD_WEBHOOK_SECRET"}, Usage: "whsec_... secret to sign webhooks (Standard Webhooks)"},
					&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics over plain HTTP at ADDR/metrics (a private address, e.g. 127.0.0.1:9102)"},
					&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
					&cli.BoolFlag{Name: "init", Usage: "create what is missing in the data directory first (as jitd init)"},
					&cli.BoolFlag{Name: "quickstart", Usage: "print what to type next once serving"},
				},
				Action: func(c *cli.Context) error {
					var handler slog.Handler = slog.NewTextHandler(stderr, nil)
					if c.String("log-format") == "json" {
						handler = slog.NewJSONHandler(stderr, nil)
					}
					logger := slog.New(handler)
					if c.Bool("init") {
						res, err := daemon.Init(c.Context, c.String("data"), ca.Ed25519, []string{"127.0.0.1", "localhost"}, time.Now())
						if err != nil {
							return err
						}
						res.Print(stderr)
					}
					var hooks []daemon.WebhookConfig
					for _, u := range c.StringSlice("webhook") {
						hooks = append(hooks, daemon.WebhookConfig{URL: u, Secret: c.String("webhook-secret")})
					}
					cfg := daemon.Config{
						Dir: c.String("data"), APIAddr: c.String("api"), BastionAddr: c.String("bastion"),
						EgressAddresses: c.StringSlice("egress"), Webhooks: hooks, Logger: logger, MetricsAddr: c.String("metrics"),
					}
					if c.Bool("quickstart") {
						cfg.Ready = func(a daemon.Addrs) { printQuickstart(stdout, c.String("data"), a) }
					}
					return daemon.Run(c.Context, cfg)
				},
			},
			{
				Name:  "user",
				Usage: "enrol users directly in the data directory (how the first admin gets in)",
				Subcommands: []*cli.Command{
					{
						Name:      "add",
						Usage:     "enrol NAME with a public key",
						ArgsUsage: "NAME",
						Flags: []cli.Flag{
							dataFlag,
							&cli.StringSliceFlag{Name: "key", Required: true, Usage: "public key file (repeatable)"},
							&cli.StringSliceFlag{Name: "group", Usage: "group (repeatable)"},
						},
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return cli.Exit("give one user name", 2)
							}
							var keys []string
							for _, path := range c.StringSlice("key") {
								b, err := os.ReadFile(path)
								if err != nil {
									return fmt.Errorf("read --key: %w", err)
								}
								keys = append(keys, string(b))
							}
							actor := "jitd user add"
							if u, err := user.Current(); err == nil {
								actor = "operator:" + u.Username
							}
							if err := daemon.EnrolUser(c.Context, c.String("data"), c.Args().First(), c.StringSlice("group"), keys, actor, time.Now()); err != nil {
								return err
							}
							fmt.Fprintf(stdout, "enrolled %s (a running jitd picks this up within seconds)\n", c.Args().First())
							return nil
						},
					},
				},
			},
			{
				Name:  "host",
				Usage: "certify a target's host key with the host CA, so engineers and the bastion never trust on first use",
				Subcommands: []*cli.Command{
					{
						Name:      "certify",
						Usage:     "write KEY-cert.pub beside a host public key",
						ArgsUsage: "HOST_KEY.pub",
						Flags: []cli.Flag{
							dataFlag,
							&cli.StringSliceFlag{Name: "principal", Required: true, Usage: "host name as in the policy inventory, and its address (repeatable)"},
							&cli.DurationFlag{Name: "valid", Value: 30 * 24 * time.Hour, Usage: "certificate lifetime"},
						},
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return cli.Exit("give one host public key file", 2)
							}
							return certifyHost(c, stdout)
						},
					},
				},
			},
		},
	}
}

func certifyHost(c *cli.Context, stdout io.Writer) error {
	cert, out, err := daemon.CertifyHostKey(c.Context, c.String("data"), daemon.HostCertRequest{
		KeyPath: c.Args().First(), Principals: c.StringSlice("principal"), ValidFor: c.Duration("valid")}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (principals %s); add to sshd_config: HostCertificate %s\n", out, strings.Join(cert.ValidPrincipals, ","), filepath.Clean(out))
	return nil
}

func printQuickstart(w io.Writer, dataDir string, a daemon.Addrs) {
	fmt.Fprintf(w, `
jitd is serving.
  API      https://%[1]s   (TLS fingerprint %[2]s)
  bastion  %[3]s

Next, in another terminal:
  # enrol yourself (the demo policy has alice in group dev and bob as approver):
  ./bin/jitd user add --data %[4]s alice --key ~/.ssh/id_ed25519.pub --group dev
  # log in with that key (from ssh-agent, or --identity ~/.ssh/id_ed25519):
  ./bin/jit login --ca https://%[1]s --fingerprint %[2]s --user alice
  # ask for ten minutes on web1, with a reason:
  ./bin/jit request web1 --login deploy --reason "deploy release 42"
  ./bin/jit status

Policy: %[4]s/policy.yaml (SIGHUP or jit admin reload to apply changes).
`, a.API, a.TLSFingerprint, orNone(a.Bastion), dataDir)
}

func orNone(s string) string {
	if s == "" {
		return "(off)"
	}
	return s
}
