package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/jitclient"
)

func (e *env) loginCmd() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "prove your enrolled SSH key, or your company identity (--sso), to the CA and store a short-lived token",
		Description: "The API's TLS certificate is pinned by --fingerprint (printed by jitd init). The enrolled key signs a\n" +
			"server nonce through ssh-agent ($SSH_AUTH_SOCK) or --identity FILE. The key can only ask for access; it opens nothing.\n" +
			"--sso logs in at the daemon's OpenID provider instead: in the browser ($BROWSER, xdg-open or open), or with a\n" +
			"device code (--device, or when there is no browser). --refresh renews an SSO login's token (docs/sso.md).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ca", EnvVars: []string{"JIT_ADDR"}, Usage: "CA API address, https://host:port"},
			&cli.StringFlag{Name: "fingerprint", Usage: "SHA256 fingerprint of the API's TLS certificate"},
			&cli.StringFlag{Name: "user", Usage: "your jitssh user name (default: your login name)"},
			&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "private key file to sign with, instead of ssh-agent"},
			&cli.DurationFlag{Name: "ttl", Usage: "token lifetime (default and maximum: the daemon's, 8h)"},
			&cli.BoolFlag{Name: "sso", Usage: "log in at the daemon's OpenID provider instead of with a key"},
			&cli.StringFlag{Name: "provider", Usage: "the SSO provider's name, when the daemon has several (implies --sso)"},
			&cli.BoolFlag{Name: "device", Usage: "log in with a device code instead of a browser (implies --sso)"},
			&cli.DurationFlag{Name: "timeout", Value: jitclient.DefaultBrowserTimeout, Usage: "how long to wait for the browser's login"},
			&cli.BoolFlag{Name: "refresh", Usage: "renew the stored token of an SSO login (the provider's groups are read again)"},
			formatFlag(),
		},
		Action: e.runLogin,
	}
}

// runLogin fills the login from the flags and the previous login, proves
// a key and stores the token.
func (e *env) runLogin(c *cli.Context) error {
	dir, err := creds.DefaultDir()
	if err != nil {
		return err
	}
	prev, _ := dir.LoadConfig() // a first login has none
	cfg := creds.Config{CA: first(c.String("ca"), prev.CA), Fingerprint: first(c.String("fingerprint"), prev.Fingerprint), User: first(c.String("user"), prev.User)}
	if cfg.User == "" {
		if u, err := user.Current(); err == nil {
			cfg.User = u.Username
		}
	}
	if cfg.CA == "" || cfg.Fingerprint == "" {
		return cli.Exit("--ca and --fingerprint are required on first login", exitUsage)
	}
	if mode, err := ssoMode(c); err != nil {
		return err
	} else if mode != "" {
		return e.runSSOLogin(c, dir, cfg, prev, mode)
	}
	client, err := api.NewClient(cfg.CA, cfg.Fingerprint, "")
	if err != nil {
		return cli.Exit(err.Error(), exitUsage)
	}
	defer client.Close()
	signers, closer, err := jitclient.Signers(c.String("identity"), os.Getenv("SSH_AUTH_SOCK"))
	if errors.Is(err, jitclient.ErrNoAgentSocket) {
		return cli.Exit(err.Error(), exitUsage)
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	cfg, res, err := jitclient.Login(c.Context, client, cfg, signers, c.Duration("ttl"))
	if err != nil {
		return loginError(err, cfg.User)
	}
	return e.saveLogin(c, dir, cfg, res)
}

// saveLogin stores the login and tells the person who they are now.
func (e *env) saveLogin(c *cli.Context, dir creds.Dir, cfg creds.Config, res api.LoginResponse) error {
	if err := dir.SaveConfig(cfg); err != nil {
		return err
	}
	if asJSON, err := jsonOutput(c); err != nil {
		return err
	} else if asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"user": res.User, "expires_at": res.ExpiresAt, "admin": res.Admin, "auditor": res.Auditor})
	}
	linef(e.stdout, "logged in as %s until %s", res.User, res.ExpiresAt.Local().Format(time.Kitchen))
	return nil
}

func (e *env) logoutCmd() *cli.Command {
	return &cli.Command{
		Name:   "logout",
		Usage:  "forget the stored token",
		Action: runLogout,
	}
}

// runLogout keeps the address and pin, so that the next login needs no
// flags.
func runLogout(*cli.Context) error {
	dir, err := creds.DefaultDir()
	if err != nil {
		return err
	}
	cfg, err := dir.LoadConfig()
	if err != nil {
		return err
	}
	cfg.Token, cfg.TokenExpires = "", time.Time{}
	return dir.SaveConfig(cfg)
}
