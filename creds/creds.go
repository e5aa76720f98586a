// Package creds keeps an engineer's local jitssh credentials: the API
// address, pinned fingerprint and bearer token; one fresh key pair and
// certificate per grant; and loading them into ssh-agent for exactly as long
// as the certificate is valid.
//
// Paths follow the XDG base directories: $XDG_CONFIG_HOME/jit for the
// configuration and token, $XDG_STATE_HOME/jit for keys and certificates.
// JIT_HOME overrides both (config in JIT_HOME, state in JIT_HOME/state).
package creds

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jitssh/jitssh/atomicfile"
)

// Dir is where the credentials live.
type Dir struct {
	Config string
	State  string
}

// DefaultDir resolves the directories from the environment.
func DefaultDir() (Dir, error) {
	if h := os.Getenv("JIT_HOME"); h != "" {
		return Dir{Config: h, State: filepath.Join(h, "state")}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Dir{}, fmt.Errorf("find home directory (set JIT_HOME): %w", err)
	}
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		cfg = filepath.Join(home, ".config")
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		state = filepath.Join(home, ".local", "state")
	}
	return Dir{Config: filepath.Join(cfg, "jit"), State: filepath.Join(state, "jit")}, nil
}

// Config is what jit login stores.
type Config struct {
	CA           string    `json:"ca"`
	Fingerprint  string    `json:"fingerprint"`
	User         string    `json:"user"`
	Token        string    `json:"token,omitempty"`
	TokenExpires time.Time `json:"token_expires,omitempty"`
	Bastion      string    `json:"bastion,omitempty"`
	HostCA       string    `json:"host_ca,omitempty"`
	// SSO names the OpenID provider of the stored token's login; empty
	// after a key login (jit login --refresh renews only SSO logins).
	SSO string `json:"sso,omitempty"`
}

// ErrNotLoggedIn means there is no stored configuration.
var ErrNotLoggedIn = errors.New("not logged in; run jit login --ca URL --fingerprint SHA256:... --user NAME")

func (d Dir) configPath() string { return filepath.Join(d.Config, "config.json") }

// LoadConfig reads the stored configuration.
func (d Dir) LoadConfig() (Config, error) {
	b, err := os.ReadFile(d.configPath())
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, ErrNotLoggedIn
	}
	if err != nil {
		return Config{}, fmt.Errorf("read jit config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("parse %s: %w", d.configPath(), err)
	}
	return c, nil
}

// SaveConfig writes the configuration, token included, readable only by the
// owner.
func (d Dir) SaveConfig(c Config) error {
	if err := os.MkdirAll(d.Config, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", d.Config, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(d.configPath(), append(b, '\n'), 0o600)
}

// Grant is a key and certificate stored for one LOGIN@HOST.
type Grant struct {
	Host, Login string
	KeyPath     string // private key; OpenSSH loads KeyPath+"-cert.pub" beside it
	CertPath    string
	Cert        *ssh.Certificate
}

// ValidBefore is when the certificate stops working.
func (g Grant) ValidBefore() time.Time { return time.Unix(int64(g.Cert.ValidBefore), 0) }

func (d Dir) keysDir() string { return filepath.Join(d.State, "keys") }

// KeyPath is where the private key for LOGIN@HOST is stored.
func (d Dir) KeyPath(login, host string) string {
	return filepath.Join(d.keysDir(), login+"@"+host)
}

// NewKey makes a fresh ed25519 key pair for one grant.
func NewKey() (ed25519.PrivateKey, ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, signer, nil
}

// SaveGrant stores a fresh private key and its certificate, both 0600. With
// priv nil only the certificate is stored; SaveExternalGrant also links
// the key that lives elsewhere.
func (d Dir) SaveGrant(login, host string, priv ed25519.PrivateKey, cert *ssh.Certificate) (Grant, error) {
	if err := os.MkdirAll(d.keysDir(), 0o700); err != nil {
		return Grant{}, fmt.Errorf("create %s: %w", d.keysDir(), err)
	}
	g := Grant{Host: host, Login: login, KeyPath: d.KeyPath(login, host), Cert: cert}
	g.CertPath = g.KeyPath + "-cert.pub"
	if priv != nil {
		block, err := ssh.MarshalPrivateKey(priv, "jit "+login+"@"+host)
		if err != nil {
			return Grant{}, fmt.Errorf("encode private key: %w", err)
		}
		// OpenSSH reads the PEM armour, not the bare block bytes.
		if err := atomicfile.Write(g.KeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
			return Grant{}, err
		}
		pub := ssh.MarshalAuthorizedKey(cert.Key)
		if err := atomicfile.Write(g.KeyPath+".pub", pub, 0o600); err != nil {
			return Grant{}, err
		}
	}
	if err := atomicfile.Write(g.CertPath, ssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// SaveExternalGrant stores the certificate of a key that jit did not make,
// such as a FIDO sk-ssh-ed25519 key, whose private key (or key handle) is
// the file keyPath. The grant's KeyPath becomes a symbolic link to keyPath,
// so that `ssh -i KeyPath` finds the certificate beside it as usual; the
// user's own key files are not touched.
func (d Dir) SaveExternalGrant(login, host, keyPath string, cert *ssh.Certificate) (Grant, error) {
	abs, err := filepath.Abs(keyPath)
	if err != nil {
		return Grant{}, fmt.Errorf("key %s: %w", keyPath, err)
	}
	if err := os.MkdirAll(d.keysDir(), 0o700); err != nil {
		return Grant{}, fmt.Errorf("create %s: %w", d.keysDir(), err)
	}
	g := Grant{Host: host, Login: login, KeyPath: d.KeyPath(login, host), Cert: cert}
	g.CertPath = g.KeyPath + "-cert.pub"
	// A fresh key of an earlier grant for LOGIN@HOST is replaced.
	for _, old := range []string{g.KeyPath, g.KeyPath + ".pub"} {
		if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Grant{}, fmt.Errorf("replace %s: %w", old, err)
		}
	}
	if err := os.Symlink(abs, g.KeyPath); err != nil {
		return Grant{}, fmt.Errorf("link %s to %s: %w", g.KeyPath, abs, err)
	}
	if err := atomicfile.Write(g.CertPath, ssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// Grants lists stored certificates, soonest to expire first. Expired ones
// are included; callers compare ValidBefore with now.
func (d Dir) Grants() ([]Grant, error) {
	matches, err := filepath.Glob(filepath.Join(d.keysDir(), "*-cert.pub"))
	if err != nil {
		return nil, err
	}
	var out []Grant
	for _, certPath := range matches {
		b, err := os.ReadFile(certPath)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", certPath, err)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", certPath, err)
		}
		cert, ok := k.(*ssh.Certificate)
		if !ok {
			return nil, fmt.Errorf("%s is not a certificate", certPath)
		}
		keyPath := strings.TrimSuffix(certPath, "-cert.pub")
		login, host, _ := strings.Cut(filepath.Base(keyPath), "@")
		out = append(out, Grant{Host: host, Login: login, KeyPath: keyPath, CertPath: certPath, Cert: cert})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cert.ValidBefore < out[j].Cert.ValidBefore })
	return out, nil
}

// Find returns the stored grant for LOGIN@HOST if it is valid at now.
func (d Dir) Find(login, host string, now time.Time) (Grant, bool) {
	gs, err := d.Grants()
	if err != nil {
		return Grant{}, false
	}
	for _, g := range gs {
		if g.Login == login && g.Host == host && now.Before(g.ValidBefore()) {
			return g, true
		}
	}
	return Grant{}, false
}

// AgentMode says when to load a grant into ssh-agent.
type AgentMode string

// Agent modes, as in --add-to-agent.
const (
	AgentAuto AgentMode = "auto" // when SSH_AUTH_SOCK is set
	AgentYes  AgentMode = "yes"  // always; an error when there is no agent
	AgentNo   AgentMode = "no"
)

// ParseAgentMode validates an --add-to-agent value.
func ParseAgentMode(s string) (AgentMode, error) {
	switch m := AgentMode(s); m {
	case AgentAuto, AgentYes, AgentNo:
		return m, nil
	}
	return "", fmt.Errorf("--add-to-agent %q must be auto, yes or no", s)
}

// AddToAgent loads key and certificate into the agent at sock with a
// lifetime equal to the certificate's remaining validity, so the agent drops
// it when it stops working. It refuses a certificate that already expired.
func AddToAgent(sock string, priv ed25519.PrivateKey, cert *ssh.Certificate, now time.Time) error {
	left := time.Unix(int64(cert.ValidBefore), 0).Sub(now)
	if left <= 0 {
		return errors.New("certificate has already expired; not adding it to the agent")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("connect to ssh-agent at %s: %w", sock, err)
	}
	defer conn.Close()
	secs := uint32(left / time.Second)
	if secs == 0 {
		secs = 1
	}
	err = agent.NewClient(conn).Add(agent.AddedKey{
		PrivateKey: priv, Certificate: cert, LifetimeSecs: secs,
		Comment: "jit " + cert.KeyId,
	})
	if err != nil {
		return fmt.Errorf("add certificate to ssh-agent: %w", err)
	}
	return nil
}

// SaveKnownHosts replaces the known_hosts file that jit hands to ssh with
// content, whole (a concurrent jit ssh may be reading it), and returns its
// path.
func (d Dir) SaveKnownHosts(content string) (string, error) {
	path := filepath.Join(d.Config, "known_hosts")
	if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
