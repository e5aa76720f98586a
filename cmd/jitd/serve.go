package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/logtext"
	"github.com/jitssh/jitssh/provision"
	"github.com/jitssh/jitssh/recstore"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the HTTPS API and, with --bastion, the recording bastion",
		Flags: append([]cli.Flag{
			dataFlag(), storeFlag(),
			&cli.StringFlag{Name: "api", Value: "127.0.0.1:7443", Usage: "API listen address"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain, leaf first) for the API and web console instead of the self-signed one (with --tls-key)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM key of --tls-cert (mode 0600)"},
			&cli.StringFlag{Name: "bastion", Usage: "bastion listen address, e.g. 127.0.0.1:2222 (empty: no bastion)"},
			&cli.StringSliceFlag{Name: "public-addr", Usage: "NAME:PORT engineers dial the bastion by (repeatable; the first is advertised; required with --bastion 0.0.0.0 or [::])"},
			&cli.StringFlag{Name: "ephemeral-uids", Value: fmt.Sprintf("%d-%d", provision.DefaultUIDMin, provision.DefaultUIDMax), Usage: "UID range LOW-HIGH reserved for ephemeral accounts on targets (never reused)"},
			&cli.StringSliceFlag{Name: "egress", Usage: "bastion source addresses towards targets, as CIDRs (source-address of target certificates; default: the local address of the route to each target; set it behind NAT)"},
			&cli.StringSliceFlag{Name: "proxy-protocol-from", Usage: "`CIDR` of a TCP load balancer in front of the API and bastion that sends a PROXY protocol v2 (or v1) header (repeatable): its connections must start with one and take the client's address from it; nobody else's is parsed"},
			&cli.StringSliceFlag{Name: "webhook", Usage: "webhook URL for request notifications (repeatable)"},
			&cli.StringFlag{Name: "webhook-secret", EnvVars: []string{"JITD_WEBHOOK_SECRET"}, Usage: "whsec_... secret to sign webhooks (Standard Webhooks)"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second, Usage: "on SIGTERM, how long to wait for open sessions and requests before cutting them"},
			&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics over plain HTTP at ADDR/metrics (a private address, e.g. 127.0.0.1:9102)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
			&cli.BoolFlag{Name: "init", Usage: "create what is missing in the data directory first (as jitd init)"},
			&cli.BoolFlag{Name: "quickstart", Usage: "print what to type next once serving"},
			&cli.StringFlag{Name: "console-url", Usage: "`https://NAME:PORT` browsers reach the web console at; with --sso-config its login page offers SSO, redirecting to URL/console/sso/callback (register it at the provider; empty: no SSO button)"},
			&cli.StringFlag{Name: "recordings", Value: "local", Usage: "where finished recordings live: local (the data directory) or s3://BUCKET/PREFIX (uploaded from the local spool; docs/scale-out.md)"},
			&cli.StringFlag{Name: "s3-endpoint", Usage: "S3-compatible endpoint URL, http(s)://HOST[:PORT], addressed path-style (empty: AWS S3); credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the instance role"},
			&cli.StringFlag{Name: "s3-region", Usage: "the bucket's region (empty: asked of the store)"},
			&cli.StringFlag{Name: "s3-ca-file", Usage: "PEM `FILE` of the CA certificates of a private https S3 endpoint"},
			&cli.StringFlag{Name: "sso-config", Usage: "YAML `FILE` naming OpenID Connect providers for jit login --sso (docs/sso.md; empty: key login only)"},
			&cli.StringFlag{Name: "replica-id", EnvVars: []string{"JITD_REPLICA_ID"}, Usage: "this replica's `ID` among those on one store (empty: DATA/replica-id, made on first start; docs/scale-out.md)"},
			&cli.StringFlag{Name: "advertise-url", Usage: "`https://HOST:PORT` the other replicas reach this one's API by (empty: the API address if it is a specific IP, else this host's name and the API port)"},
		}, limitFlags()...),
		Action: runServe,
	}
}

// runServe is jitd serve: it serves until SIGINT or SIGTERM cancels the
// context, reloading the policy on SIGHUP, then shuts down gracefully.
func runServe(c *cli.Context) error {
	// Catch SIGHUP before anything is loaded, so an early one waits for
	// Serve instead of killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	stdout, stderr := c.App.Writer, c.App.ErrWriter
	// Text logs bound every value a client sent (logtext); JSON logs keep
	// them whole, escaped by JSON.
	var handler slog.Handler = logtext.New(slog.NewTextHandler(stderr, nil), logtext.DefaultMax)
	if c.String("log-format") == "json" {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	logger := slog.New(handler)
	if c.Bool("init") {
		res, err := layout(c).Init(c.Context, ca.Ed25519, []string{"127.0.0.1", "localhost"}, time.Now())
		if err != nil {
			return err
		}
		res.Print(stderr)
	}
	limits, err := limitsFrom(c)
	if err != nil {
		return err
	}
	uidMin, uidMax, err := provision.ParseUIDRange(c.String("ephemeral-uids"))
	if err != nil {
		return cli.Exit("--ephemeral-uids: "+err.Error(), 2)
	}
	recs, err := recstore.ParseLocation(c.String("recordings"))
	if err != nil {
		return cli.Exit("--recordings: "+err.Error(), 2)
	}
	var hooks []daemon.WebhookConfig
	for _, u := range c.StringSlice("webhook") {
		hooks = append(hooks, daemon.WebhookConfig{URL: u, Secret: c.String("webhook-secret")})
	}
	cfg := daemon.Config{
		Dir: c.String("data"), Store: c.String("store"), APIAddr: c.String("api"), BastionAddr: c.String("bastion"),
		PublicAddrs: c.StringSlice("public-addr"), EgressAddresses: c.StringSlice("egress"), Webhooks: hooks, Logger: logger, MetricsAddr: c.String("metrics"),
		ShutdownTimeout: c.Duration("shutdown-timeout"),
		Limits:          limits,
		TLSCert:         c.String("tls-cert"), TLSKey: c.String("tls-key"),
		SSOConfig:       c.String("sso-config"),
		ConsoleURL:      c.String("console-url"),
		EphemeralUIDMin: uidMin, EphemeralUIDMax: uidMax,
		ProxyProtocolFrom: c.StringSlice("proxy-protocol-from"),
		Recordings:        recs,
		S3:                recstore.S3Config{Endpoint: c.String("s3-endpoint"), Region: c.String("s3-region"), CAFile: c.String("s3-ca-file")},
		ReplicaID:         c.String("replica-id"), AdvertiseURL: c.String("advertise-url"),
	}
	if c.Bool("quickstart") {
		cfg.Ready = func(a daemon.Addrs) { printQuickstart(stdout, c.String("data"), a) }
	}
	d, err := daemon.New(c.Context, cfg)
	if err != nil {
		return err
	}
	return serveWithReloads(c.Context, d, hup, logger)
}

// serveWithReloads serves d until ctx is done or Serve fails, reloading the
// policy at each value from hup and logging what changed, then closes d.
func serveWithReloads(ctx context.Context, d *daemon.Daemon, hup <-chan os.Signal, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	for {
		select {
		case err := <-done:
			return errors.Join(err, d.Close())
		case <-hup:
			change, err := d.Reload(ctx)
			if err != nil {
				log.Error("policy reload failed; keeping the last good policy", "err", err)
				continue
			}
			log.Info("policy reloaded", "change", change)
		}
	}
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
