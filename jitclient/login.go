package jitclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

// ErrNoAgentSocket means login found neither an identity file nor an
// ssh-agent to sign with.
var ErrNoAgentSocket = errors.New("no ssh-agent (SSH_AUTH_SOCK is empty); pass --identity FILE")

// Login proves one of signers to the daemon behind client as cfg.User and
// returns cfg with the new token and, when the daemon tells them, the
// bastion's address and the host CA. Signers are tried in order until one
// is enrolled. The caller saves the returned configuration.
func Login(ctx context.Context, client *api.Client, cfg creds.Config, signers []ssh.Signer, ttl time.Duration) (creds.Config, api.LoginResponse, error) {
	var res api.LoginResponse
	var err error
	for _, s := range signers {
		res, err = client.Login(ctx, cfg.User, s, ttl)
		var ae *api.Error
		if err == nil || !errors.As(err, &ae) || ae.Code != api.CodeKeyNotEnrolled {
			break
		}
	}
	if err != nil {
		return cfg, res, fmt.Errorf("login as %s: %w", cfg.User, err)
	}
	cfg.SSO = ""
	return withLogin(ctx, client, cfg, res), res, nil
}

// Signers returns the keys to log in with: the one in the identity file,
// or every plain key in the ssh-agent at sock (certificates are skipped).
// The closer releases the agent connection.
func Signers(identity, sock string) ([]ssh.Signer, io.Closer, error) {
	if identity != "" {
		s, err := identitySigner(identity)
		if err != nil {
			return nil, nil, err
		}
		return []ssh.Signer{s}, io.NopCloser(nil), nil
	}
	if sock == "" {
		return nil, nil, ErrNoAgentSocket
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
	return plain, conn, nil
}

func identitySigner(identity string) (ssh.Signer, error) {
	b, err := os.ReadFile(identity)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("identity %s is passphrase-protected; add it to ssh-agent and omit --identity", identity)
	}
	if err != nil {
		return nil, fmt.Errorf("parse identity %s: %w", identity, err)
	}
	return s, nil
}
