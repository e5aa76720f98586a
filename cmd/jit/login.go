package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

var formatFlag = &cli.StringFlag{Name: "format", Value: "text", EnvVars: []string{"JIT_FORMAT"}, Usage: "output format: text or json"}

func (e *env) loginCmd() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "prove your enrolled SSH key to the CA and store a short-lived token",
		Description: "The API's TLS certificate is pinned by --fingerprint (printed by jitd init). The enrolled key signs a\n" +
			"server nonce through ssh-agent ($SSH_AUTH_SOCK) or --identity FILE. The key can only ask for access; it opens nothing.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ca", EnvVars: []string{"JIT_ADDR"}, Usage: "CA API address, https://host:port"},
			&cli.StringFlag{Name: "fingerprint", Usage: "SHA256 fingerprint of the API's TLS certificate"},
			&cli.StringFlag{Name: "user", Usage: "your jitssh user name (default: your login name)"},
			&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "private key file to sign with, instead of ssh-agent"},
			&cli.DurationFlag{Name: "ttl", Usage: "token lifetime (default and maximum: the daemon's, 8h)"},
			formatFlag,
		},
		Action: func(c *cli.Context) error {
			dir, err := creds.DefaultDir()
			if err != nil {
				return err
			}
			prev, _ := dir.LoadConfig()
			cfg := creds.Config{CA: first(c.String("ca"), prev.CA), Fingerprint: first(c.String("fingerprint"), prev.Fingerprint), User: first(c.String("user"), prev.User)}
			if cfg.User == "" {
				if u, err := user.Current(); err == nil {
					cfg.User = u.Username
				}
			}
			if cfg.CA == "" || cfg.Fingerprint == "" {
				return cli.Exit("--ca and --fingerprint are required on first login", exitUsage)
			}
			client, err := api.NewClient(cfg.CA, cfg.Fingerprint, "")
			if err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			defer client.Close()
			signers, closeSigners, err := loginSigners(c.String("identity"))
			if err != nil {
				return err
			}
			defer closeSigners()
			var res api.LoginResponse
			var lastErr error
			for _, s := range signers {
				res, lastErr = client.Login(c.Context, cfg.User, s, c.Duration("ttl"))
				var ae *api.Error
				if lastErr == nil || !errors.As(lastErr, &ae) || ae.Code != "key_not_enrolled" {
					break
				}
			}
			if lastErr != nil {
				return fmt.Errorf("login as %s: %w", cfg.User, lastErr)
			}
			cfg.Token, cfg.TokenExpires = res.Token, res.ExpiresAt
			if info, err := client.CA(c.Context); err == nil {
				cfg.Bastion, cfg.HostCA = info.Bastion, info.HostCA
			}
			if err := dir.SaveConfig(cfg); err != nil {
				return err
			}
			if asJSON, err := jsonOutput(c); err != nil {
				return err
			} else if asJSON {
				return json.NewEncoder(e.stdout).Encode(map[string]any{"user": res.User, "expires_at": res.ExpiresAt, "admin": res.Admin, "auditor": res.Auditor})
			}
			fmt.Fprintf(e.stdout, "logged in as %s until %s\n", res.User, res.ExpiresAt.Local().Format(time.Kitchen))
			return nil
		},
	}
}

func (e *env) logoutCmd() *cli.Command {
	return &cli.Command{
		Name:  "logout",
		Usage: "forget the stored token",
		Action: func(c *cli.Context) error {
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
		},
	}
}

// loginSigners returns the keys to try: the identity file, or every key in
// ssh-agent.
func loginSigners(identity string) ([]ssh.Signer, func(), error) {
	if identity != "" {
		b, err := os.ReadFile(identity)
		if err != nil {
			return nil, nil, fmt.Errorf("read identity: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, nil, fmt.Errorf("identity %s is passphrase-protected; add it to ssh-agent and omit --identity", identity)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parse identity %s: %w", identity, err)
		}
		return []ssh.Signer{s}, func() {}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, cli.Exit("no ssh-agent (SSH_AUTH_SOCK is empty); pass --identity FILE", exitUsage)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to ssh-agent: %w", err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("list ssh-agent keys: %w", err)
	}
	var plain []ssh.Signer
	for _, s := range signers {
		if _, isCert := s.PublicKey().(*ssh.Certificate); !isCert {
			plain = append(plain, s)
		}
	}
	if len(plain) == 0 {
		conn.Close()
		return nil, nil, errors.New("ssh-agent holds no plain keys; add your enrolled key with ssh-add")
	}
	return plain, func() { conn.Close() }, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
