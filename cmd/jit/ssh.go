package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/jitclient"
)

// bastionHostKeyAlias is the name under which clients check the bastion's
// host certificate, whatever address they reach it by; the daemon puts it
// among the certificate's principals.
const bastionHostKeyAlias = "jitssh-bastion"

func (e *env) sshCmd() *cli.Command {
	return &cli.Command{
		Name:      "ssh",
		Usage:     "connect to a host through the recording bastion, asking for a grant first if you hold none",
		ArgsUsage: "[LOGIN@]HOST [-- COMMAND...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "login", Aliases: []string{"l"}, Usage: "login on the host (none: a one-time account, where a role gives one)"},
			&cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "justification, when a new grant is needed"},
			&cli.DurationFlag{Name: "ttl", Usage: "lifetime of a new grant"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "force a pseudo-terminal (ssh -tt)"},
		},
		Action:       e.runSSH,
		BashComplete: e.completeHosts(true),
	}
}

// runSSH uses a live grant, or obtains one (its summary not printed: the
// session follows), and runs the system ssh through the bastion with it.
func (e *env) runSSH(c *cli.Context) error {
	if c.NArg() < 1 {
		return cli.Exit("give a host: jit ssh [LOGIN@]HOST [-- COMMAND]", exitUsage)
	}
	// No login: the one-time account of a live grant, or a new one.
	login, host := splitTarget(c.Args().First(), c.String("login"))
	dir, cfg, err := bastionConfig()
	if err != nil {
		return err
	}
	g, err := e.grantFor(c, dir, login, host)
	if err != nil {
		return err
	}
	kh, err := writeKnownHosts(dir, cfg)
	if err != nil {
		return err
	}
	args := sshArgs(cfg.Bastion, kh, g, c.Bool("tty"))
	args = append(args, c.Args().Slice()[1:]...)
	cmd := exec.CommandContext(c.Context, "ssh", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	if f, ok := e.stdin.(*os.File); ok {
		cmd.Stdin = f
	}
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == 255 {
			e.explainRefusal(c.Context, g)
		}
		return cli.Exit("", exit.ExitCode())
	}
	return err
}

// explainRefusal runs after ssh failed (255: its own error, such as the
// bastion's "Permission denied (publickey)"): it asks the daemon about the
// certificate and says why the bastion refused it, if the daemon knows.
// ssh's exit code stands either way.
func (e *env) explainRefusal(ctx context.Context, g creds.Grant) {
	cl, err := e.client()
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	if why := cl.Refusal(ctx, g, time.Now()); why != "" {
		printError(e.stderr, "jit: the bastion refused the certificate:", why)
	}
}

// grantFor returns the stored grant for LOGIN@HOST that is still valid in
// a few seconds' time (ssh needs them to log in), or obtains a new one.
func (e *env) grantFor(c *cli.Context, dir creds.Dir, login, host string) (creds.Grant, error) {
	if g, ok := findGrant(dir, login, host, time.Now().Add(5*time.Second)); ok {
		return g, nil
	}
	reason := c.String("reason")
	if reason == "" {
		var err error
		if reason, err = e.askReason(host); err != nil {
			return creds.Grant{}, err
		}
	}
	// The grant is for this ssh only: it is not loaded into ssh-agent.
	o := jitclient.ObtainOptions{Host: host, Login: login, Reason: reason, TTL: c.Duration("ttl"),
		Wait: e.waitOptions(0), Agent: jitclient.AgentOptions{Mode: creds.AgentNo}}
	out, err := e.obtain(c, o)
	return out.Grant, err
}

// findGrant finds the stored grant for LOGIN@HOST valid at now; without a
// login, the one-time account grant for host that lasts longest.
func findGrant(dir creds.Dir, login, host string, now time.Time) (creds.Grant, bool) {
	if login != "" {
		return dir.Find(login, host, now)
	}
	gs, err := dir.Grants()
	if err != nil {
		return creds.Grant{}, false
	}
	var best creds.Grant
	found := false
	for _, g := range gs {
		if g.Host == host && ephemeralLogin(g.Login) && now.Before(g.ValidBefore()) && (!found || !g.ValidBefore().Before(best.ValidBefore())) {
			best, found = g, true
		}
	}
	return best, found
}

// sshArgs are the options that make the stock ssh client go through the
// bastion with the grant's key, checking the bastion's host certificate.
func sshArgs(bastion, knownHosts string, g creds.Grant, tty bool) []string {
	host, port, err := net.SplitHostPort(bastion)
	if err != nil {
		host, port = bastion, "22"
	}
	args := []string{
		"-p", port,
		"-i", g.KeyPath,
		"-o", "CertificateFile=" + g.CertPath,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=" + bastionHostKeyAlias,
		"-o", "ForwardAgent=no",
		"-l", g.Login + "@" + g.Host,
	}
	if tty {
		args = append(args, "-tt")
	}
	return append(args, host)
}

// writeKnownHosts stores the host CA as the only authority for the bastion:
// no trust on first use.
func writeKnownHosts(dir creds.Dir, cfg creds.Config) (string, error) {
	if cfg.HostCA == "" {
		return "", errors.New("the host CA is unknown; run jit login again")
	}
	return dir.SaveKnownHosts(fmt.Sprintf("@cert-authority %s %s\n", bastionHostKeyAlias, cfg.HostCA))
}

func (e *env) sshConfigCmd() *cli.Command {
	return &cli.Command{
		Name:      "ssh-config",
		Usage:     "print ssh_config Host blocks so that plain `ssh HOST` goes through the bastion",
		ArgsUsage: "HOST...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "login", Aliases: []string{"l"}, Required: true, Usage: "login on the hosts"},
		},
		Action:       e.runSSHConfig,
		BashComplete: e.completeHosts(false),
	}
}

// runSSHConfig prints Host blocks for the grants jit request stores.
func (e *env) runSSHConfig(c *cli.Context) error {
	if c.NArg() < 1 {
		return cli.Exit("give the hosts to configure", exitUsage)
	}
	dir, cfg, err := bastionConfig()
	if err != nil {
		return err
	}
	kh, err := writeKnownHosts(dir, cfg)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Bastion)
	if err != nil {
		return fmt.Errorf("bastion address %q: %w", cfg.Bastion, err)
	}
	w := e.stdout
	fmt.Fprintf(w, "# BEGIN jitssh (generated by jit ssh-config; get a grant first with jit request)\n")
	fmt.Fprintf(w, "# known_hosts line, written to %s:\n#   @cert-authority %s %s\n", kh, bastionHostKeyAlias, cfg.HostCA)
	login := c.String("login")
	for _, h := range c.Args().Slice() {
		key := dir.KeyPath(login, h)
		fmt.Fprintf(w, "Host %s\n", h)
		fmt.Fprintf(w, "    HostName %s\n    Port %s\n    User %s@%s\n", host, port, login, h)
		fmt.Fprintf(w, "    HostKeyAlias %s\n    UserKnownHostsFile %s\n    GlobalKnownHostsFile /dev/null\n    StrictHostKeyChecking yes\n", bastionHostKeyAlias, kh)
		fmt.Fprintf(w, "    IdentityFile %s\n    CertificateFile %s-cert.pub\n    IdentitiesOnly yes\n    ForwardAgent no\n", key, key)
	}
	fmt.Fprintln(w, "# END jitssh")
	return nil
}

// bastionConfig is the stored login of a command that goes through the
// bastion, which the login must have learnt the address of.
func bastionConfig() (creds.Dir, creds.Config, error) {
	dir, err := creds.DefaultDir()
	if err != nil {
		return dir, creds.Config{}, err
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		return dir, cfg, err
	}
	if cfg.Bastion == "" {
		return dir, cfg, errors.New("the daemon runs no bastion (jitd serve --bastion ADDR), or log in again to learn its address")
	}
	return dir, cfg, nil
}
