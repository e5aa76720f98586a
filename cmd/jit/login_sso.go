package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/jitclient"
)

// ssoMode says which login the flags ask for: "" (key), "sso" or
// "refresh"; flags of one kind given with the other are usage errors.
func ssoMode(c *cli.Context) (string, error) {
	sso := c.Bool("sso") || c.IsSet("provider") || c.Bool("device")
	switch {
	case c.Bool("refresh") && (sso || c.IsSet("identity") || c.IsSet("ttl")):
		return "", cli.Exit("--refresh renews the stored SSO login; give it without --sso, --provider, --device, --identity or --ttl", exitUsage)
	case c.Bool("refresh"):
		return "refresh", nil
	case sso && (c.IsSet("identity") || c.IsSet("ttl") || c.IsSet("user")):
		return "", cli.Exit("--identity, --ttl and --user are for key login; with --sso the provider says who you are and how long the token lasts", exitUsage)
	case sso:
		return "sso", nil
	case c.IsSet("timeout"):
		return "", cli.Exit("--timeout applies to --sso", exitUsage)
	}
	return "", nil
}

// runSSOLogin logs in at the daemon's OpenID provider, or renews an SSO
// login, and stores the token as the key login does.
func (e *env) runSSOLogin(c *cli.Context, dir creds.Dir, cfg, prev creds.Config, mode string) error {
	token := ""
	if mode == "refresh" {
		if prev.Token == "" {
			return cli.Exit("no stored login to refresh; run jit login --sso", exitUsage)
		}
		token = prev.Token
		// The stored login, renewed: what /v1/ca does not answer is kept.
		prev.CA, prev.Fingerprint = cfg.CA, cfg.Fingerprint
		cfg = prev
	}
	client, err := api.NewClient(cfg.CA, cfg.Fingerprint, token)
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	defer client.Close()
	var res api.LoginResponse
	if mode == "refresh" {
		cfg, res, err = jitclient.Refresh(c.Context, client, cfg)
	} else {
		s := jitclient.SSO{
			Client: client, Provider: first(c.String("provider"), prev.SSO), Device: c.Bool("device"),
			Timeout: c.Duration("timeout"), Say: func(f string, a ...any) { linef(e.stderr, f, a...) },
		}
		if !s.Device {
			s.Open = jitclient.BrowserOpener(os.Getenv, runtime.GOOS)
		}
		if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			s.Status = func(line string) { fmt.Fprintf(e.stderr, "\r\033[K%s", textLine(line)) }
		}
		cfg, res, err = s.Login(c.Context, cfg)
	}
	if err != nil {
		return loginError(err, cfg.User)
	}
	return e.saveLogin(c, dir, cfg, res)
}

// loginError turns a refused login into a clear message and exit code
// (docs/cli.md): 3 when who you are is refused, 4 when the login timed
// out, 2 for a provider name the daemon does not have.
func loginError(err error, user string) error {
	var ae *api.Error
	if errors.Is(err, jitclient.ErrTimedOut) {
		return cli.Exit(err.Error(), exitTimedOut)
	}
	if errors.Is(err, context.Canceled) {
		return cli.Exit("interrupted; nothing was stored", exitInterrupted)
	}
	if errors.Is(err, jitclient.ErrProviderChoice) {
		return cli.Exit(err.Error(), exitUsage)
	}
	var pe *jitclient.ProviderError
	if errors.As(err, &pe) {
		return cli.Exit(err.Error(), exitDenied)
	}
	if !errors.As(err, &ae) {
		return err
	}
	if msg, code := loginMessage(ae, user); msg != "" {
		return cli.Exit(fmt.Sprintf("%s (%s)", msg, ae.Code), code)
	}
	return err
}

func loginMessage(ae *api.Error, user string) (string, int) {
	switch ae.Code {
	case api.CodeSSOAccessDenied:
		return "the provider denied the login (the account may be disabled or not allowed to use jitssh)", exitDenied
	case api.CodeSSONoRoles:
		return "you are known at the provider, but none of your groups there is mapped to a jitssh group; an admin maps them in the policy's sso.groups", exitDenied
	case api.CodeSSONoUser:
		return "the provider did not say who you are as a valid jitssh user name: " + ae.Message, exitDenied
	case api.CodeKeyLoginDisabled:
		return fmt.Sprintf("key login is turned off for %s by policy; log in with jit login --sso", user), exitDenied
	case api.CodeSSOUnknownProvider:
		return "the daemon has no such SSO provider: " + ae.Message, exitUsage
	case api.CodeSSOFlowUnknown:
		return "this login is unknown to the daemon, used already or expired; run jit login --sso again", exitError
	case api.CodeSSOStateMismatch:
		return "the answer that came back from the provider does not belong to this login (state mismatch); run jit login --sso again", exitError
	case api.CodeSSOTokenInvalid:
		return "the daemon refused the provider's ID token: " + ae.Message + "; tell the operators", exitError
	case api.CodeSSORefreshFailed:
		return "the provider would not renew the login (your session there ended, or the account changed); run jit login --sso", exitDenied
	case api.CodeNotSSOLogin:
		return "the stored token is from a key login; --refresh renews SSO logins only: run jit login", exitUsage
	case api.CodeSSOProviderFailed:
		return "the daemon could not reach the SSO provider: " + ae.Message, exitError
	}
	return "", 0
}
