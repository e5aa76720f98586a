package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

// kex is pinned on every path: OpenSSH 9.2 prefers sntrup761x25519, which
// x/crypto does not offer, so the default would compare different key
// exchanges.
const kex = "curve25519-sha256"

// targetHost is the target's name in the policy.
const targetHost = "db1"

// paths is one target sshd reachable two ways: through the jitssh bastion
// (engineer certificate, recorded) and through OpenSSH's own ProxyJump via
// a second sshd (plain keys on both hops).
type paths struct {
	env    *daemonEnv
	target *sshdtest.Server
	jump   *sshdtest.Server
	login  string
	// engKey is the engineer's grant key; engKey-cert.pub is its
	// certificate for LOGIN@db1 issued through the API.
	engKey string
	// plainKey is in the AuthorizedKeysFile of the jump and the target.
	plainKey string
	// config is the ssh_config with the options shared by every path and
	// the Host blocks "jump", "target" (through jump) and "direct".
	config string
	// bastionKnownHosts trusts the host CA for the bastion's alias.
	bastionKnownHosts string
}

// daemonRunner starts the daemon of env with the benchmark policy.
type daemonRunner func(b *testing.B, env *daemonEnv, login string, hosts []benchHost)

// inProcess runs the daemon in the benchmark's process.
func inProcess(b *testing.B, env *daemonEnv, login string, hosts []benchHost) {
	env.run(b, login, hosts)
}

// setupPaths starts the target, the jump host and the daemon (with run),
// and obtains the engineer's certificate through the API.
func setupPaths(b *testing.B, run daemonRunner) *paths {
	b.Helper()
	sshdtest.Require(b, "sshd", "ssh")
	env := initDaemon(b)
	p := &paths{env: env, login: sshdtest.LocalUser(b)}
	dir := b.TempDir()
	p.plainKey, _ = sshdtest.NewUserKey(b, dir, "plain")
	authorized := filepath.Join(dir, "authorized_keys")
	pub, err := os.ReadFile(p.plainKey + ".pub")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		b.Fatal(err)
	}
	extra := []string{"AuthorizedKeysFile " + authorized, "KexAlgorithms " + kex, "MaxStartups 250:30:500", "ClientAliveInterval 0"}
	p.target = sshdtest.Start(b, sshdtest.Config{
		TrustedUserCAKeys: []ssh.PublicKey{env.keys.Target.PublicKey()},
		Principals:        []string{p.login + "@" + targetHost},
		HostCA:            env.keys.Host,
		HostName:          targetHost,
		Extra:             extra,
	})
	p.jump = sshdtest.Start(b, sshdtest.Config{Extra: extra})
	run(b, env, p.login, []benchHost{{name: targetHost, addr: p.target.Addr}})
	p.engKey, _ = sshdtest.NewUserKey(b, dir, "grant")
	if err := p.requestCert(b); err != nil {
		b.Fatal(err)
	}
	p.writeSSHFiles(b, dir, env.addrs)
	return p
}

// requestCert asks the API for a certificate for engKey and writes it as
// engKey-cert.pub.
func (p *paths) requestCert(b *testing.B) error {
	pub, err := os.ReadFile(p.engKey + ".pub")
	if err != nil {
		return err
	}
	c := p.env.client(b)
	resp, err := c.CreateRequest(context.Background(), api.CreateRequestBody{
		Host: targetHost, Login: p.login, Reason: "benchmark the bastion", TTL: "1h", PublicKey: strings.TrimSpace(string(pub)),
	})
	if err != nil {
		return fmt.Errorf("request certificate for %s@%s: %w", p.login, targetHost, err)
	}
	if resp.Certificate == "" {
		return fmt.Errorf("request certificate for %s@%s: state %q, no certificate", p.login, targetHost, resp.Request.State)
	}
	return os.WriteFile(p.engKey+"-cert.pub", []byte(resp.Certificate+"\n"), 0o600)
}

// writeSSHFiles writes the known_hosts files and the ssh_config.
func (p *paths) writeSSHFiles(b *testing.B, dir string, addrs daemon.Addrs) {
	b.Helper()
	hostCA := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p.env.keys.Host.PublicKey())))
	p.bastionKnownHosts = filepath.Join(dir, "known_hosts_bastion")
	if err := os.WriteFile(p.bastionKnownHosts, []byte("@cert-authority "+daemon.BastionHostKeyAlias+" "+hostCA+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	plainKnown := filepath.Join(dir, "known_hosts_plain")
	var kh strings.Builder
	for _, s := range []*sshdtest.Server{p.jump, p.target} {
		fmt.Fprintf(&kh, "%s %s", s.KnownHostsPattern(), ssh.MarshalAuthorizedKey(s.HostKey))
	}
	fmt.Fprintf(&kh, "@cert-authority %s %s\n", p.target.KnownHostsPattern(), hostCA)
	if err := os.WriteFile(plainKnown, []byte(kh.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	p.config = filepath.Join(dir, "ssh_config")
	cfg := fmt.Sprintf(`Host jump
  HostName 127.0.0.1
  Port %d
Host target
  HostName 127.0.0.1
  Port %d
  ProxyJump jump
Host direct
  HostName 127.0.0.1
  Port %d
Host jump target direct
  User %s
  IdentityFile %s
  UserKnownHostsFile %s
Host *
  KexAlgorithms %s
  BatchMode yes
  StrictHostKeyChecking yes
  GlobalKnownHostsFile /dev/null
  IdentitiesOnly yes
  PreferredAuthentications publickey
  ConnectTimeout 10
  EscapeChar none
  LogLevel ERROR
  ControlMaster no
  ControlPath none
  UpdateHostKeys no
  ForwardAgent no
  ForwardX11 no
  AddKeysToAgent no
`, p.jump.Port, p.target.Port, p.target.Port, p.login, p.plainKey, plainKnown, kex)
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
}

// bastionPort is the bastion's TCP port.
func (p *paths) bastionPort() string {
	_, port, _ := net.SplitHostPort(p.env.addrs.Bastion)
	return port
}

// bastion returns the stock ssh command through the bastion: the SSH user
// names the target as LOGIN@HOST. args may start with ssh options (-tt).
func (p *paths) bastion(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"-F", p.config, "-p", p.bastionPort(), "-l", p.login + "@" + targetHost,
		"-i", p.engKey, "-o", "CertificateFile=" + p.engKey + "-cert.pub",
		"-o", "UserKnownHostsFile=" + p.bastionKnownHosts, "-o", "HostKeyAlias=" + daemon.BastionHostKeyAlias,
		"-o", "StrictHostKeyChecking=yes"}
	return p.ssh(ctx, append(append(base, sshOptions(args)...), append([]string{"127.0.0.1"}, sshCommand(args)...)...))
}

// proxyJump returns the stock ssh command to the same target through the
// jump sshd (ssh -J).
func (p *paths) proxyJump(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"-F", p.config}
	return p.ssh(ctx, append(append(base, sshOptions(args)...), append([]string{"target"}, sshCommand(args)...)...))
}

// direct returns the stock ssh command straight to the target sshd.
func (p *paths) direct(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"-F", p.config}
	return p.ssh(ctx, append(append(base, sshOptions(args)...), append([]string{"direct"}, sshCommand(args)...)...))
}

func (p *paths) ssh(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, sshdtest.Path("ssh"), args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// sshOptions returns the leading "-x" style arguments of args; sshCommand
// the rest (the remote command).
func sshOptions(args []string) []string {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		i++
	}
	return args[:i]
}

func sshCommand(args []string) []string { return args[len(sshOptions(args)):] }

// runOK runs cmd and fails the benchmark with its output on error.
func runOK(b *testing.B, what string, cmd *exec.Cmd) []byte {
	b.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", what, err, out)
	}
	return out
}

// parseCount parses the last whitespace-separated field of out as a byte
// count (the output of wc -c).
func parseCount(out []byte) (int64, error) {
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, fmt.Errorf("no byte count in %q", out)
	}
	n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("byte count %q: %w", f[len(f)-1], err)
	}
	return n, nil
}
