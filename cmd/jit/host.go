package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/hostjoin"
)

// hostHelp says what jit host join writes; the help of join and renew.
const hostHelp = `Run as root on the target. Every file is under --root (default /):
  /etc/ssh/jitssh/host            this host's name in the policy
  /etc/ssh/jitssh/api             the CA's URL and TLS fingerprint (for renew)
  /etc/ssh/jitssh/target_ca.pub   TrustedUserCAKeys: the target CA
  /etc/ssh/jitssh/revoked.krl     RevokedKeys: revoked target certificates
  /etc/ssh/jitssh/logins          the logins policy may grant here, one a line
  HOSTKEY-cert.pub                the host certificate, beside the host key
  /etc/ssh/sshd_config.d/50-jitssh.conf   the sshd drop-in naming the files above
  /etc/systemd/system/jitssh-renew.service, .timer (and its timers.target.wants link)
The new files replace the old only once sshd -t -f ROOT/etc/ssh/sshd_config
passes and sshd -T shows the drop-in in force; then sshd is reloaded. On any
failure every old file is put back and new ones are removed. With --root the
drop-in names paths under ROOT (as sshd started from ROOT/etc/ssh/sshd_config
must see them). The private host key is read (renew signs with it), never written.`

func hostFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "root", Value: "/", Usage: "install under this directory (tests, images); the drop-in then names paths under it"},
		&cli.StringFlag{Name: "host-key", Usage: "private host key whose public half (PATH.pub) is certified (default ROOT" + hostjoin.DefaultHostKey + ")"},
		&cli.StringFlag{Name: "sshd", Value: "sshd", Usage: "sshd binary that checks the configuration (sshd -t)"},
		&cli.StringFlag{Name: "reload-command", Usage: "shell command that reloads sshd (default: systemctl reload ssh under systemd, else SIGHUP to the pid in ROOT/run/sshd.pid)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print each file (created, changed, unchanged) and the drop-in; change nothing"},
	}
}

func (e *env) hostCmd() *cli.Command {
	return &cli.Command{
		Name:  "host",
		Usage: "on a target host, as root: join jitssh, renew its host certificate, answer sshd's principals question, manage ephemeral accounts",
		Subcommands: []*cli.Command{
			{
				Name:        "join",
				Usage:       "enrol this host with a one-time token from jit admin host token",
				Description: hostHelp,
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "ca", Required: true, Usage: "jitd API address, https://host:port"},
					&cli.StringFlag{Name: "fingerprint", Required: true, Usage: "the API's TLS fingerprint, SHA256:... (jitd init prints it)"},
					&cli.StringFlag{Name: "token", Required: true, EnvVars: []string{"JIT_JOIN_TOKEN"}, Usage: "one-time join token (jhj_...); a dry run does not send it"},
				}, hostFlags()...),
				Action: e.runHostJoin,
			},
			{
				Name:        "renew",
				Usage:       "refresh the revocation list, and renew the host certificate when two thirds of its validity are gone, proving the host key (the timer runs this daily)",
				Description: hostHelp,
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "force", Usage: "renew the certificate now; without it, a certificate with more than a third of its validity left is kept and only the KRL is refreshed"},
				}, hostFlags()...),
				Action: e.runHostRenew,
			},
			{
				Name:      "principals",
				Usage:     "print USER@THISHOST when USER is a login policy may grant here (sshd's AuthorizedPrincipalsCommand, run as nobody)",
				ArgsUsage: "USER",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "root", Value: "/", Usage: "read ROOT/etc/ssh/jitssh"}},
				Action:    e.runHostPrincipals,
			},
			e.hostAccountCmd(),
		},
	}
}

// hostOptions reads the flags common to join and renew.
func hostOptions(c *cli.Context) (hostjoin.Options, error) {
	l, err := hostjoin.NewLayout(c.String("root"))
	if err != nil {
		return hostjoin.Options{}, cli.Exit(err.Error(), exitUsage)
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return hostjoin.Options{}, fmt.Errorf("find the jit binary for AuthorizedPrincipalsCommand: %w", err)
	}
	hk := c.String("host-key")
	if hk != "" {
		if hk, err = filepath.Abs(hk); err != nil {
			return hostjoin.Options{}, fmt.Errorf("host key %q: %w", c.String("host-key"), err)
		}
	}
	return hostjoin.Options{
		Layout: l, HostKey: hk, SSHD: c.String("sshd"), ReloadCommand: c.String("reload-command"),
		Jit: self, DryRun: c.Bool("dry-run"),
	}, nil
}

func (e *env) runHostJoin(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("jit host join takes no arguments", exitUsage)
	}
	o, err := hostOptions(c)
	if err != nil {
		return err
	}
	if os.Getenv("JIT_JOIN_TOKEN") == "" {
		linef(e.stderr, "jit: warning: --token on the command line is readable by every local user (ps) until the join is done; prefer JIT_JOIN_TOKEN=... jit host join")
	}
	r, err := hostjoin.Join(c.Context, o, c.String("ca"), c.String("fingerprint"), c.String("token"))
	if err != nil {
		return err
	}
	printHostResult(e.stdout, o, r)
	return nil
}

func (e *env) runHostRenew(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("jit host renew takes no arguments", exitUsage)
	}
	o, err := hostOptions(c)
	if err != nil {
		return err
	}
	o.Force = c.Bool("force")
	r, err := hostjoin.Renew(c.Context, o)
	if err != nil {
		return err
	}
	printHostResult(e.stdout, o, r)
	return nil
}

// runHostPrincipals prints nothing, and exits 0, for a user without
// access: sshd then simply finds no principal.
func (e *env) runHostPrincipals(c *cli.Context) error {
	if err := oneArg(c, "USER"); err != nil {
		return err
	}
	l, err := hostjoin.NewLayout(c.String("root"))
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	out, err := hostjoin.Principals(l, c.Args().First())
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, out)
	return err
}

func printHostResult(w io.Writer, o hostjoin.Options, r hostjoin.Result) {
	verb := ""
	if o.DryRun {
		verb = "would be "
		fmt.Fprintln(w, "dry run: nothing changed")
	}
	if r.Host != "" {
		fmt.Fprintln(w, "host:", textLine(r.Host))
	}
	for _, ch := range r.Changes {
		fmt.Fprintf(w, "%s%s %s\n", verb, ch.State, textLine(ch.Path))
	}
	switch {
	case r.Reload != "" && o.DryRun:
		fmt.Fprintln(w, "sshd reload would be:", r.Reload)
	case r.Reload != "":
		fmt.Fprintln(w, "sshd reloaded:", r.Reload)
	}
	if o.DryRun {
		fmt.Fprintf(w, "\n%s:\n%s\n", o.Layout.Path(hostjoin.DropIn), r.DropIn)
	}
	if !r.RenewBefore.IsZero() {
		fmt.Fprintln(w, "renew before:", r.RenewBefore.UTC().Format("2006-01-02T15:04:05Z"))
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "warning:", textLine(n))
	}
	fmt.Fprintln(w, "renewal: the systemd timer jitssh-renew.timer, or this /etc/crontab line:")
	fmt.Fprintln(w, "  "+r.CronLine)
}
