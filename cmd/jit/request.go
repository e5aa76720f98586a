package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

func (e *env) requestCmd() *cli.Command {
	return &cli.Command{
		Name:      "request",
		Usage:     "ask for access to one host, with a reason, for minutes",
		ArgsUsage: "[LOGIN@]HOST",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "login", Aliases: []string{"l"}, Usage: "login on the host"},
			&cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "justification (ticket, incident, change)"},
			&cli.DurationFlag{Name: "ttl", Usage: "certificate lifetime (default: the role's, usually 10m)"},
			&cli.StringFlag{Name: "key", Usage: "certify this existing public key (e.g. a FIDO sk-ssh-ed25519 key's .pub) instead of a fresh one"},
			&cli.StringFlag{Name: "add-to-agent", Value: "auto", Usage: "load key and certificate into ssh-agent: auto, yes or no"},
			&cli.BoolFlag{Name: "no-wait", Usage: "when approval is needed, print the request id and return"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up waiting for approval after this long (exit 4)"},
			&cli.BoolFlag{Name: "break-glass", Usage: "emergency access without approval, where a role allows it; flagged loudly"},
			formatFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("give exactly one host: jit request [LOGIN@]HOST --login LOGIN --reason TEXT", exitUsage)
			}
			login, host := splitTarget(c.Args().First(), c.String("login"))
			if login == "" {
				return cli.Exit("--login is required (or LOGIN@HOST)", exitUsage)
			}
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
			_, err = e.obtain(c, obtainArgs{host: host, login: login, reason: reason, ttl: c.Duration("ttl"),
				keyFile: c.String("key"), agentMode: mode, noWait: c.Bool("no-wait"), timeout: c.Duration("timeout"), breakGlass: c.Bool("break-glass")})
			return err
		},
	}
}

type obtainArgs struct {
	host, login, reason string
	ttl                 time.Duration
	keyFile             string
	agentMode           creds.AgentMode
	noWait              bool
	timeout             time.Duration
	breakGlass          bool
	quiet               bool // jit ssh: no grant summary on stdout
}

// obtain asks for a grant, waits for approval where needed, stores the
// certificate and loads it into the agent.
func (e *env) obtain(c *cli.Context, a obtainArgs) (creds.Grant, error) {
	client, _, dir, err := e.client()
	if err != nil {
		return creds.Grant{}, err
	}
	defer client.Close()
	var priv ed25519.PrivateKey
	var pubText string
	if a.keyFile != "" {
		if a.keyFile, err = externalKey(a.keyFile); err != nil {
			return creds.Grant{}, err
		}
		b, err := os.ReadFile(a.keyFile)
		if err != nil {
			return creds.Grant{}, fmt.Errorf("read --key: %w", err)
		}
		pubText = string(b)
	} else {
		var signer ssh.Signer
		if priv, signer, err = creds.NewKey(); err != nil {
			return creds.Grant{}, err
		}
		pubText = string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
	}
	body := api.CreateRequestBody{Host: a.host, Login: a.login, Reason: a.reason, PublicKey: strings.TrimSpace(pubText), BreakGlass: a.breakGlass}
	if a.ttl != 0 {
		body.TTL = a.ttl.String()
	}
	res, err := client.CreateRequest(c.Context, body)
	if err != nil {
		return creds.Grant{}, err
	}
	if res.Certificate == "" {
		if err := savePending(dir, res.Request.ID, priv, a.keyFile); err != nil {
			return creds.Grant{}, err
		}
		if a.noWait {
			return creds.Grant{}, e.printRequest(c, res.Request)
		}
		if res, err = e.waitFor(c, client, res.Request, a.timeout); err != nil {
			return creds.Grant{}, err
		}
		priv, a.keyFile, err = loadPending(dir, res.Request.ID)
		if err != nil {
			return creds.Grant{}, err
		}
	}
	return e.store(c, dir, res, priv, a.keyFile, a.agentMode, a.quiet)
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

// store saves the certificate of res with its key (a fresh priv, or the
// existing key whose public half is pubFile) and loads the agent.
func (e *env) store(c *cli.Context, dir creds.Dir, res api.RequestResponse, priv ed25519.PrivateKey, pubFile string, mode creds.AgentMode, quiet bool) (creds.Grant, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(res.Certificate))
	if err != nil {
		return creds.Grant{}, fmt.Errorf("parse issued certificate: %w", err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		return creds.Grant{}, errors.New("daemon answered with a key that is not a certificate")
	}
	var g creds.Grant
	if priv == nil && pubFile != "" {
		g, err = dir.SaveExternalGrant(res.Request.Login, res.Request.Host, strings.TrimSuffix(pubFile, ".pub"), cert)
	} else {
		g, err = dir.SaveGrant(res.Request.Login, res.Request.Host, priv, cert)
	}
	if err != nil {
		return creds.Grant{}, err
	}
	removePending(dir, res.Request.ID)
	sock := os.Getenv("SSH_AUTH_SOCK")
	loaded := false
	switch {
	case mode == creds.AgentNo || priv == nil:
	case sock == "" && mode == creds.AgentYes:
		return g, cli.Exit("--add-to-agent yes but SSH_AUTH_SOCK is empty", exitUsage)
	case sock != "":
		if err := creds.AddToAgent(sock, priv, cert, time.Now()); err != nil {
			if mode == creds.AgentYes {
				return g, err
			}
			fmt.Fprintln(e.stderr, "jit: warning:", err)
		} else {
			loaded = true
		}
	}
	if quiet {
		return g, nil
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return g, err
	}
	if asJSON {
		return g, json.NewEncoder(e.stdout).Encode(map[string]any{
			"request": res.Request, "certificate_file": g.CertPath, "key_file": g.KeyPath,
			"valid_before": g.ValidBefore().UTC(), "serial": fmt.Sprint(cert.Serial), "principals": cert.ValidPrincipals, "in_agent": loaded,
		})
	}
	fmt.Fprintf(e.stdout, "granted %s until %s (%s left), serial %d\n", cert.ValidPrincipals[0], g.ValidBefore().Local().Format("15:04:05"),
		time.Until(g.ValidBefore()).Round(time.Second), cert.Serial)
	fmt.Fprintf(e.stdout, "  certificate %s\n", g.CertPath)
	if loaded {
		fmt.Fprintln(e.stdout, "  loaded into ssh-agent for as long as it is valid")
	}
	fmt.Fprintf(e.stdout, "  connect:    jit ssh %s@%s\n", res.Request.Login, res.Request.Host)
	return g, nil
}

// waitFor polls a pending request until it is approved (then redeems it),
// denied, expired, cancelled, or the timeout passes. Ctrl-C leaves the
// request pending and says how to resume.
func (e *env) waitFor(c *cli.Context, client *api.Client, req api.Request, timeout time.Duration) (api.RequestResponse, error) {
	ctx := c.Context
	var cancel context.CancelFunc = func() {}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	tty := isTerminal(e.stderr)
	fmt.Fprintf(e.stderr, "Waiting for request approval... (request %s; needs %d approval(s))\n", req.ID, req.ApprovalsNeeded)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		res, err := client.Request(ctx, req.ID)
		if err != nil && ctx.Err() == nil {
			return res, err
		}
		if err == nil {
			r := res.Request
			if tty {
				left := ""
				if r.ExpiresAt != nil {
					left = time.Until(*r.ExpiresAt).Round(time.Second).String()
				}
				fmt.Fprintf(e.stderr, "\r\x1b[K%s: %s, %d/%d approvals, %s left", r.ID, r.State, countApproved(r.Approvals), r.ApprovalsNeeded, left)
			}
			switch r.State {
			case "approved":
				if tty {
					fmt.Fprintln(e.stderr)
				}
				fmt.Fprintf(e.stderr, "approved by %s\n", r.DecidedBy)
				return client.Redeem(c.Context, r.ID)
			case "denied":
				return res, cli.Exit(fmt.Sprintf("request %s denied by %s: %s", r.ID, r.DecidedBy, r.DecisionReason), exitDenied)
			case "expired", "cancelled":
				return res, cli.Exit(fmt.Sprintf("request %s %s", r.ID, r.State), exitEnded)
			case "issued":
				return res, cli.Exit(fmt.Sprintf("request %s was already redeemed", r.ID), exitEnded)
			}
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(e.stderr)
			}
			if c.Context.Err() != nil {
				return api.RequestResponse{}, cli.Exit(fmt.Sprintf("stopped waiting; request %s is still pending. Resume with: jit wait %s", req.ID, req.ID), exitInterrupted)
			}
			return api.RequestResponse{}, cli.Exit(fmt.Sprintf("timed out waiting for approval; request %s is still pending. Resume with: jit wait %s", req.ID, req.ID), exitTimedOut)
		case <-tick.C:
		}
	}
}

func countApproved(as []api.Approval) int {
	n := 0
	for _, a := range as {
		if a.Decision == "approve" {
			n++
		}
	}
	return n
}

func (e *env) waitCmd() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "resume waiting for a pending request and fetch its certificate",
		ArgsUsage: "REQUEST_ID",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long (exit 4)"},
			&cli.StringFlag{Name: "add-to-agent", Value: "auto", Usage: "auto, yes or no"},
			formatFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("give one request id", exitUsage)
			}
			mode, err := creds.ParseAgentMode(c.String("add-to-agent"))
			if err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			client, _, dir, err := e.client()
			if err != nil {
				return err
			}
			defer client.Close()
			res, err := client.Request(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			if res.Request.State != "approved" {
				if res, err = e.waitFor(c, client, res.Request, c.Duration("timeout")); err != nil {
					return err
				}
			} else if res, err = client.Redeem(c.Context, res.Request.ID); err != nil {
				return err
			}
			priv, pubFile, err := loadPending(dir, res.Request.ID)
			if err != nil {
				return err
			}
			_, err = e.store(c, dir, res, priv, pubFile, mode, false)
			return err
		},
	}
}

func (e *env) statusCmd() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "list your live grants with the time left",
		Flags: []cli.Flag{formatFlag},
		Action: func(c *cli.Context) error {
			dir, err := creds.DefaultDir()
			if err != nil {
				return err
			}
			gs, err := dir.Grants()
			if err != nil {
				return err
			}
			asJSON, err := jsonOutput(c)
			if err != nil {
				return err
			}
			now := time.Now()
			enc := json.NewEncoder(e.stdout)
			live := 0
			for _, g := range gs {
				left := g.ValidBefore().Sub(now)
				if left <= 0 {
					continue
				}
				live++
				if asJSON {
					if err := enc.Encode(map[string]any{"principal": g.Login + "@" + g.Host, "serial": fmt.Sprint(g.Cert.Serial),
						"valid_before": g.ValidBefore().UTC(), "seconds_left": int(left.Seconds()), "key_id": g.Cert.KeyId, "certificate_file": g.CertPath}); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(e.stdout, "%-32s %8s left  serial %d  %s\n", g.Login+"@"+g.Host, left.Round(time.Second), g.Cert.Serial, g.Cert.KeyId)
			}
			if live == 0 && !asJSON {
				fmt.Fprintln(e.stderr, "no live grants; ask with jit request HOST --login LOGIN --reason TEXT")
			}
			return nil
		},
	}
}

func (e *env) printRequest(c *cli.Context, r api.Request) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	fmt.Fprintln(e.stdout, r.ID)
	fmt.Fprintf(e.stderr, "request %s is %s; resume with: jit wait %s\n", r.ID, r.State, r.ID)
	return nil
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

// Pending requests keep their fresh private key on disk until redeemed, so
// that jit wait can finish what jit request --no-wait started.
func pendingPath(dir creds.Dir, id string) string {
	return dir.State + "/pending/" + id
}

func savePending(dir creds.Dir, id string, priv ed25519.PrivateKey, keyFile string) error {
	if err := os.MkdirAll(dir.State+"/pending", 0o700); err != nil {
		return err
	}
	if priv == nil {
		return os.WriteFile(pendingPath(dir, id), []byte("external "+keyFile+"\n"), 0o600)
	}
	block, err := ssh.MarshalPrivateKey(priv, "jit pending "+id)
	if err != nil {
		return fmt.Errorf("encode pending key of %s: %w", id, err)
	}
	return os.WriteFile(pendingPath(dir, id), pem.EncodeToMemory(block), 0o600)
}

// loadPending returns the fresh key of a pending request, or for one made
// with --key the public key file it certifies.
func loadPending(dir creds.Dir, id string) (ed25519.PrivateKey, string, error) {
	b, err := os.ReadFile(pendingPath(dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("no key for request %s on this machine (it was made elsewhere)", id)
	}
	if err != nil {
		return nil, "", err
	}
	if pubFile, ok := strings.CutPrefix(string(b), "external "); ok {
		return nil, strings.TrimSuffix(pubFile, "\n"), nil
	}
	k, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("parse pending key of %s: %w", id, err)
	}
	priv, ok := k.(*ed25519.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("pending key of %s is not ed25519", id)
	}
	return *priv, "", nil
}

func removePending(dir creds.Dir, id string) { _ = os.Remove(pendingPath(dir, id)) }
