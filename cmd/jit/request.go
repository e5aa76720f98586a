package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/jitclient"
)

func (e *env) requestCmd() *cli.Command {
	return &cli.Command{
		Name:      "request",
		Usage:     "ask for access to one host, with a reason, for minutes",
		ArgsUsage: "[LOGIN@]HOST",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "login", Aliases: []string{"l"}, Usage: "login on the host (none: a one-time account, where a role gives one)"},
			&cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "justification (ticket, incident, change)"},
			&cli.DurationFlag{Name: "ttl", Usage: "certificate lifetime (default: the role's, usually 10m)"},
			&cli.StringFlag{Name: "key", Usage: "certify this existing public key (e.g. a FIDO sk-ssh-ed25519 key's .pub) instead of a fresh one"},
			&cli.StringFlag{Name: "add-to-agent", Value: "auto", Usage: "load key and certificate into ssh-agent: auto, yes or no"},
			&cli.BoolFlag{Name: "no-wait", Usage: "when approval is needed, print the request id and return"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up waiting for approval after this long (exit 4)"},
			&cli.BoolFlag{Name: "break-glass", Usage: "emergency access without approval, where a role allows it; flagged loudly"},
			formatFlag(),
		},
		Action:       e.runRequest,
		BashComplete: e.completeHosts(true),
	}
}

// runRequest checks every argument before it reads the stored login, so a
// usage error is reported as one (exit 2) even when not logged in.
func (e *env) runRequest(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("give exactly one host: jit request [LOGIN@]HOST [--login LOGIN] --reason TEXT", exitUsage)
	}
	// No login asks for a one-time account where a role gives one.
	login, host := splitTarget(c.Args().First(), c.String("login"))
	mode, err := creds.ParseAgentMode(c.String("add-to-agent"))
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	reason := c.String("reason")
	if reason == "" {
		if reason, err = e.askReason(host); err != nil {
			return err
		}
	}
	keyFile := c.String("key")
	if keyFile != "" {
		if keyFile, err = externalKey(keyFile); err != nil {
			return err
		}
	}
	o := jitclient.ObtainOptions{Host: host, Login: login, Reason: reason, TTL: c.Duration("ttl"), BreakGlass: c.Bool("break-glass"),
		PublicKeyFile: keyFile, NoWait: c.Bool("no-wait"), Wait: e.waitOptions(c.Duration("timeout")), Agent: agentOptions(mode)}
	out, err := e.obtain(c, o)
	if err != nil {
		return err
	}
	if out.Pending {
		return e.printRequest(c, out.Request)
	}
	return e.printObtained(c, out)
}

// obtain runs jitclient's Obtain with the stored login and maps how it
// ended to jit's exit codes.
func (e *env) obtain(c *cli.Context, o jitclient.ObtainOptions) (jitclient.Obtained, error) {
	cl, err := e.client()
	if err != nil {
		return jitclient.Obtained{}, err
	}
	defer cl.Close()
	out, err := cl.Obtain(c.Context, o)
	return out, e.outcome(out, suggestHosts(c.Context, cl, o.Host, err))
}

func (e *env) waitCmd() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "resume waiting for a pending request and fetch its certificate",
		ArgsUsage: "REQUEST_ID",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long (exit 4)"},
			&cli.StringFlag{Name: "add-to-agent", Value: "auto", Usage: "auto, yes or no"},
			formatFlag(),
		},
		Action: e.runWait,
	}
}

// runWait finishes what jit request --no-wait (or an interrupted wait)
// started on this machine.
func (e *env) runWait(c *cli.Context) error {
	if err := oneArg(c, "request id"); err != nil {
		return err
	}
	mode, err := creds.ParseAgentMode(c.String("add-to-agent"))
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		out, err := cl.Resume(c.Context, c.Args().First(), e.waitOptions(c.Duration("timeout")), agentOptions(mode))
		if err := e.outcome(out, err); err != nil {
			return err
		}
		return e.printObtained(c, out)
	})
}

func agentOptions(mode creds.AgentMode) jitclient.AgentOptions {
	return jitclient.AgentOptions{Mode: mode, Sock: os.Getenv("SSH_AUTH_SOCK")}
}

// outcome turns the ways a grant can fail to come into exit codes
// (docs/cli.md) and prints the agent warning of one that came.
func (e *env) outcome(out jitclient.Obtained, err error) error {
	if out.AgentWarning != nil {
		printError(e.stderr, "jit: warning:", out.AgentWarning.Error())
	}
	var (
		denied  *jitclient.DeniedError
		ended   *jitclient.EndedError
		stopped *jitclient.StoppedError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jitclient.ErrNoAgent):
		return cli.Exit(err.Error(), exitUsage)
	case errors.As(err, &denied):
		return cli.Exit(err.Error(), exitDenied)
	case errors.As(err, &ended):
		return cli.Exit(err.Error(), exitEnded)
	case errors.As(err, &stopped):
		if isTerminal(e.stderr) {
			fmt.Fprintln(e.stderr) // end the status line
		}
		if stopped.Interrupted {
			return cli.Exit(err.Error(), exitInterrupted)
		}
		return cli.Exit(err.Error(), exitTimedOut)
	}
	return err
}

// waitOptions draw the waiting status on stderr: the status line only on
// a terminal, where it is redrawn in place.
func (e *env) waitOptions(timeout time.Duration) jitclient.WaitOptions {
	tty := isTerminal(e.stderr)
	return jitclient.WaitOptions{
		Timeout: timeout,
		Waiting: func(r api.Request) {
			linef(e.stderr, "Waiting for request approval... (request %s; needs %d approval(s))", r.ID, r.ApprovalsNeeded)
		},
		Polled: func(r api.Request) {
			if tty {
				left := ""
				if r.ExpiresAt != nil {
					left = time.Until(*r.ExpiresAt).Round(time.Second).String()
				}
				fmt.Fprint(e.stderr, "\r\x1b[K"+textLine(fmt.Sprintf("%s: %s, %d/%d approvals, %s left", r.ID, r.State, jitclient.CountApproved(r.Approvals), r.ApprovalsNeeded, left)))
			}
		},
		Approved: func(r api.Request) {
			if tty {
				fmt.Fprintln(e.stderr) // end the status line
			}
			linef(e.stderr, "approved by %s", r.DecidedBy)
		},
	}
}

// printObtained reports a stored grant: a summary, or one JSON object.
func (e *env) printObtained(c *cli.Context, out jitclient.Obtained) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	g, r := out.Grant, out.Request
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{
			"request": r, "certificate_file": g.CertPath, "key_file": g.KeyPath,
			"valid_before": g.ValidBefore().UTC(), "serial": fmt.Sprint(g.Cert.Serial), "principals": g.Cert.ValidPrincipals, "in_agent": out.InAgent,
		})
	}
	linef(e.stdout, "granted %s until %s (%s left), serial %d", g.Cert.ValidPrincipals[0], g.ValidBefore().Local().Format("15:04:05"),
		time.Until(g.ValidBefore()).Round(time.Second), g.Cert.Serial)
	linef(e.stdout, "  certificate %s", g.CertPath)
	if out.InAgent {
		fmt.Fprintln(e.stdout, "  loaded into ssh-agent for as long as it is valid")
	}
	if ephemeralLogin(r.Login) {
		linef(e.stdout, "  one-time account %s: made at your first session, removed when the grant ends", r.Login)
		linef(e.stdout, "  connect:    jit ssh %s", r.Host)
		return nil
	}
	linef(e.stdout, "  connect:    jit ssh %s@%s", r.Login, r.Host)
	return nil
}

// ephemeralLogin reports whether login is a one-time account's, which jitd
// alone makes (no role may list such a login).
func ephemeralLogin(login string) bool { return strings.HasPrefix(login, api.AccountLoginPrefix) }

// printRequest reports a request left pending by --no-wait: its id on
// stdout for scripts, how to resume on stderr.
func (e *env) printRequest(c *cli.Context, r api.Request) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	linef(e.stdout, "%s", r.ID)
	linef(e.stderr, "request %s is %s; resume with: jit wait %s", r.ID, r.State, r.ID)
	if ephemeralLogin(r.Login) {
		linef(e.stderr, "  one-time account %s on %s", r.Login, r.Host)
	}
	return nil
}

// externalKey checks a --key argument: a public key file named KEY.pub
// beside its private key (or FIDO key handle) KEY, as ssh-keygen writes
// them. It returns the absolute path of the public key file.
func externalKey(pubFile string) (string, error) {
	if !strings.HasSuffix(pubFile, ".pub") {
		return "", cli.Exit(fmt.Sprintf("--key %s: give the public key file KEY.pub that sits beside its private key KEY", pubFile), exitUsage)
	}
	abs, err := filepath.Abs(pubFile)
	if err != nil {
		return "", fmt.Errorf("--key %s: %w", pubFile, err)
	}
	if _, err := os.Stat(strings.TrimSuffix(abs, ".pub")); err != nil {
		return "", cli.Exit(fmt.Sprintf("--key %s: its private key: %v", pubFile, err), exitUsage)
	}
	return abs, nil
}

// askReason prompts for a justification when stdin is a terminal.
func (e *env) askReason(host string) (string, error) {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", cli.Exit("--reason is required", exitUsage)
	}
	fmt.Fprintf(e.stderr, "Reason for access to %s: ", host)
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reason: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// splitTarget reads LOGIN@HOST or HOST with the login from a flag.
func splitTarget(arg, loginFlag string) (login, host string) {
	if l, h, ok := strings.Cut(arg, "@"); ok {
		return l, h
	}
	return loginFlag, arg
}
