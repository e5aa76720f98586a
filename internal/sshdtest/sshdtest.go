// Package sshdtest starts a real OpenSSH sshd for tests, on 127.0.0.1 by
// default or on a given address through a command wrapper (inside a network
// namespace of internal/netnstest), and builds ssh client commands that talk
// to it.
//
// Every server runs from its own sshd_config in t.TempDir() and is stopped in
// t.Cleanup. Tests that need OpenSSH call Require first: it skips when a binary
// is missing, except with CI=true, where a missing binary is a failure.
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

// startTimeout bounds how long Start waits for sshd to accept connections.
const startTimeout = 10 * time.Second

// stopTimeout bounds how long the cleanup waits after SIGTERM before SIGKILL.
const stopTimeout = 5 * time.Second

// Path returns the absolute path of the OpenSSH binary name ("sshd", "ssh",
// "ssh-keygen", "ssh-agent", ...), looking in $PATH and then in /usr/sbin,
// /usr/bin, /usr/local/sbin and /usr/local/bin. It returns "" if the binary is
// missing.
func Path(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	// sshd usually lives in /usr/sbin, which is not on every user's PATH.
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Require skips the test if any of bins is missing. With the environment
// variable CI set to "true" a missing binary fails the test instead, naming
// the binary and how to install it.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if Path(b) != "" {
			continue
		}
		msg := fmt.Sprintf("OpenSSH binary %q not found in $PATH or /usr/sbin; install it with: apt-get install openssh-server openssh-client", b)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// LocalUser returns the login the test server accepts: the user running the
// test (root in CI). A non-root sshd can only log in its own user.
func LocalUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshdtest: current user: %v", err)
	}
	return u.Username
}

// Config describes the sshd to start. The zero value starts a server that
// trusts no user CA and accepts nobody.
type Config struct {
	// TrustedUserCAKeys are written to the TrustedUserCAKeys file, one
	// authorized_keys line each.
	TrustedUserCAKeys []ssh.PublicKey
	// Principals is the AuthorizedPrincipalsFile content for the test login,
	// one principal per line (e.g. "root@db1"). The file is always
	// configured; an empty list means no certificate is accepted.
	Principals []string
	// HostCA, if set, certifies the generated host key (HostCertificate)
	// with principals ListenHost (127.0.0.1) and HostName (if set), and the server's
	// known_hosts file then trusts HostCA through an @cert-authority line
	// instead of pinning the host key.
	HostCA ssh.Signer
	// HostName is an extra host-certificate principal.
	HostName string
	// HostPrivateKey, if set, is the host key instead of a generated one,
	// so that a test can have it certified before sshd starts (a join).
	HostPrivateKey ed25519.PrivateKey
	// HostCert, if set, is written as the HostCertificate instead of one
	// signed by HostCA; it must certify HostPrivateKey's public key.
	HostCert *ssh.Certificate
	// RevokedKeys is an optional path for sshd's RevokedKeys (a KRL or a
	// list of keys). sshd refuses every public key if it cannot read it.
	RevokedKeys string
	// ListenHost is the IP address sshd listens on; empty is 127.0.0.1.
	ListenHost string
	// Port is the port sshd listens on, for tests that must name the
	// address before sshd starts (see FreePort). Zero picks a free port of
	// ListenHost, or 22 with Wrap set (a fresh network namespace has every
	// port free, and the root namespace's ports are not its own).
	Port int
	// Wrap, if set, turns sshd's command line into the one that runs it,
	// e.g. (*netnstest.Host).Argv to run it inside a network namespace. It
	// must exec sshd, so that the started process is sshd itself.
	Wrap func(name string, args ...string) []string
	// Root, if set, lays the server out as a stock host under Root (see
	// rootLayout): sshd_config at Root/etc/ssh/sshd_config includes
	// Root/etc/ssh/sshd_config.d/*.conf first and trusts nothing itself, so
	// that what a drop-in installs decides who logs in. TrustedUserCAKeys,
	// Principals, HostCA and RevokedKeys must then be empty. Root must be
	// readable by every user sshd runs commands as.
	Root string
	// Extra are additional sshd_config lines. Lines before the first
	// "Match" come first in the file, so they override the generated lines
	// (sshd keeps the first value of a keyword); "Match" blocks go last.
	Extra []string
}

// Server is a running sshd.
type Server struct {
	// Addr is "HOST:PORT" (HOST is Config.ListenHost, default 127.0.0.1).
	Addr string
	// Host is the address sshd listens on.
	Host string
	// Port is the TCP port sshd listens on.
	Port int
	// Dir holds sshd_config, keys and the principals file (Root/etc/ssh
	// with Config.Root).
	Dir string
	// Config is the path of sshd_config.
	Config string
	// HostKey is the public host key.
	HostKey ssh.PublicKey
	// HostSigner is the host private key, so tests can build known_hosts
	// files or impersonate the host.
	HostSigner ssh.Signer
	// HostCert is the host certificate when Config.HostCA is set, else nil.
	HostCert *ssh.Certificate
	// Login is the user to log in as (LocalUser).
	Login string
	// KnownHosts is a known_hosts file that SSHCommand uses: it pins
	// HostKey, or with Config.HostCA it holds only an @cert-authority line.
	// Tests may rewrite it with WriteKnownHosts.
	KnownHosts string

	cmd    *exec.Cmd
	stderr *testkit.Buffer
	done   chan struct{}
}

// Log returns what sshd wrote to stderr so far (LogLevel VERBOSE), for
// failure messages.
func (s *Server) Log() string { return s.stderr.String() }

// WaitLog waits at most timeout until sshd's log contains substr and reports
// whether it does. sshd may log a verdict after the client has gone.
func (s *Server) WaitLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(s.Log(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Start starts sshd on a free port of 127.0.0.1 (or as cfg's ListenHost,
// Port, Wrap and Root say) with its own sshd_config in t.TempDir(),
// validates the config with `sshd -t` first, waits (at most 10 s) until the
// port accepts connections and stops the process in t.Cleanup (SIGTERM,
// then SIGKILL). It fails the test on any error and
// skips (or fails with CI=true) when sshd is missing.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	Require(t, "sshd")
	sshd := Path("sshd")
	if os.Geteuid() == 0 {
		// The privilege-separation directory sshd chroots into.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshdtest: create privsep dir /run/sshd: %v", err)
		}
	}
	s, err := newServer(t, cfg)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	files, err := s.writeFiles(cfg)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}

	// A port picked by binding :0 is released before sshd binds it;
	// another process may grab it in between, so retry a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := pickPort(cfg, s.Host)
		if err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		s.Port = port
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
		if err := os.WriteFile(s.Config, []byte(sshdConfig(cfg, files, s.Addr)), 0o600); err != nil {
			t.Fatalf("sshdtest: write sshd_config: %v", err)
		}
		if out, err := s.command(cfg, sshd, "-t", "-f", s.Config).CombinedOutput(); err != nil {
			t.Fatalf("sshdtest: sshd -t -f %s: %v\n%s", s.Config, err, out)
		}
		if lastErr = s.run(s.command(cfg, sshd, "-D", "-e", "-f", s.Config)); lastErr == nil {
			t.Cleanup(s.stop)
			if err := writeDefaultKnownHosts(s, cfg); err != nil {
				t.Fatalf("sshdtest: %v", err)
			}
			return s
		}
	}
	t.Fatalf("sshdtest: start sshd: %v\nsshd log:\n%s", lastErr, s.Log())
	return nil
}

type serverFiles struct {
	root, hostKey, hostCert, trustedCAs, principals string
}

// writeFiles writes the host key (and certificate), the trusted CA file and
// the principals file, and fills in s's host key fields.
func (s *Server) writeFiles(cfg Config) (serverFiles, error) {
	f := serverFiles{
		root:       cfg.Root,
		hostKey:    filepath.Join(s.Dir, "ssh_host_ed25519_key"),
		trustedCAs: filepath.Join(s.Dir, "trusted_user_ca_keys"),
		principals: filepath.Join(s.Dir, "authorized_principals"),
	}
	priv := cfg.HostPrivateKey
	if priv == nil {
		var err error
		if _, priv, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return f, fmt.Errorf("generate host key: %w", err)
		}
	}
	pemBlock, err := ssh.MarshalPrivateKey(priv, "sshdtest host key")
	if err != nil {
		return f, fmt.Errorf("marshal host key: %w", err)
	}
	if err := os.WriteFile(f.hostKey, pem.EncodeToMemory(pemBlock), 0o600); err != nil {
		return f, fmt.Errorf("write host key: %w", err)
	}
	if s.HostSigner, err = ssh.NewSignerFromKey(priv); err != nil {
		return f, fmt.Errorf("host signer: %w", err)
	}
	s.HostKey = s.HostSigner.PublicKey()
	if err := os.WriteFile(f.hostKey+".pub", ssh.MarshalAuthorizedKey(s.HostKey), 0o644); err != nil {
		return f, fmt.Errorf("write host public key: %w", err)
	}

	if cfg.Root != "" {
		return f, nil // the drop-ins decide whom the server trusts
	}
	if cfg.HostCert != nil {
		s.HostCert = cfg.HostCert
		f.hostCert = f.hostKey + "-cert.pub"
		if err := os.WriteFile(f.hostCert, ssh.MarshalAuthorizedKey(cfg.HostCert), 0o644); err != nil {
			return f, fmt.Errorf("write host certificate: %w", err)
		}
	} else if cfg.HostCA != nil {
		principals := []string{s.Host}
		if cfg.HostName != "" {
			principals = append(principals, cfg.HostName)
		}
		now := time.Now()
		cert := &ssh.Certificate{
			Key:             s.HostKey,
			Serial:          1,
			CertType:        ssh.HostCert,
			KeyId:           "sshdtest host",
			ValidPrincipals: principals,
			ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
			ValidBefore:     uint64(now.Add(24 * time.Hour).Unix()),
		}
		if err := cert.SignCert(rand.Reader, cfg.HostCA); err != nil {
			return f, fmt.Errorf("certify host key: %w", err)
		}
		s.HostCert = cert
		f.hostCert = f.hostKey + "-cert.pub"
		if err := os.WriteFile(f.hostCert, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
			return f, fmt.Errorf("write host certificate: %w", err)
		}
	}

	var cas bytes.Buffer
	for _, k := range cfg.TrustedUserCAKeys {
		cas.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(f.trustedCAs, cas.Bytes(), 0o644); err != nil {
		return f, fmt.Errorf("write trusted user CA keys: %w", err)
	}
	var principals strings.Builder
	for _, p := range cfg.Principals {
		principals.WriteString(p + "\n")
	}
	if err := os.WriteFile(f.principals, []byte(principals.String()), 0o644); err != nil {
		return f, fmt.Errorf("write principals file: %w", err)
	}
	return f, nil
}

// sshdConfig renders the sshd_config text.
func sshdConfig(cfg Config, f serverFiles, addr string) string {
	var head, tail []string
	for i, l := range cfg.Extra {
		if strings.EqualFold(firstWord(l), "match") {
			tail = cfg.Extra[i:]
			break
		}
		head = append(head, l)
	}
	var lines []string
	if f.root != "" {
		// First, as Debian's stock sshd_config does: sshd keeps the first
		// value of a keyword, so the drop-ins win.
		lines = append(lines, "Include "+filepath.Join(f.root, "etc", "ssh", "sshd_config.d", "*.conf"))
	}
	lines = append(lines, head...)
	lines = append(lines,
		"ListenAddress "+addr,
		"HostKey "+f.hostKey,
	)
	if f.hostCert != "" {
		lines = append(lines, "HostCertificate "+f.hostCert)
	}
	lines = append(lines,
		"PidFile "+pidFile(f),
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"PubkeyAuthentication yes",
		"AuthorizedKeysFile none",
	)
	if f.root == "" {
		lines = append(lines, "TrustedUserCAKeys "+f.trustedCAs, "AuthorizedPrincipalsFile "+f.principals)
	}
	lines = append(lines,
		"PermitRootLogin prohibit-password",
		"LogLevel VERBOSE",
		"PrintMotd no",
		"PrintLastLog no",
		"Subsystem sftp internal-sftp",
		// bash sources ~/.bashrc for commands run by sshd only at shell
		// level 1; starting at 1 keeps the test login's dotfiles out of
		// the tests. On a developer's machine they can stall every shell:
		// pyenv's rehash lock, left behind by a session killed mid-start,
		// made each later command wait 60 s.
		"SetEnv SHLVL=1",
	)
	if cfg.RevokedKeys != "" {
		lines = append(lines, "RevokedKeys "+cfg.RevokedKeys)
	}
	lines = append(lines, tail...)
	return strings.Join(lines, "\n") + "\n"
}

func firstWord(line string) string {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// run starts sshd and waits until it accepts a connection or exits.
func (s *Server) run(cmd *exec.Cmd) error {
	s.stderr = &testkit.Buffer{}
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	// Per-connection children inherit stderr; do not let a lingering child
	// hold Wait forever.
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	if err := s.WaitAccepting(startTimeout); err != nil {
		s.stop()
		return err
	}
	return nil
}

// WaitAccepting waits at most timeout until s accepts a TCP connection, as
// after a SIGHUP, when sshd re-executes itself and listens again. It
// returns an error if sshd exited or the time ran out.
func (s *Server) WaitAccepting(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("sshd exited: %v", s.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 500*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("sshd did not accept connections on %s within %v", s.Addr, timeout)
}

// Pid is sshd's process id, e.g. for a reload command ("kill -HUP PID").
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits, then kills.
func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// KnownHostsPattern is the known_hosts host pattern ssh looks up for s:
// "[HOST]:PORT", or "HOST" on port 22.
func (s *Server) KnownHostsPattern() string {
	if s.Port == 22 {
		return s.host()
	}
	return fmt.Sprintf("[%s]:%d", s.host(), s.Port)
}

// host is s.Host, or for a Server a test filled in itself, the host of
// s.Addr, or 127.0.0.1.
func (s *Server) host() string {
	if s.Host != "" {
		return s.Host
	}
	if h, _, err := net.SplitHostPort(s.Addr); err == nil && h != "" {
		return h
	}
	return "127.0.0.1"
}

// WriteKnownHosts writes a known_hosts file at path (0600) for s. With hostCA
// nil it pins s.HostKey; otherwise it holds only an "@cert-authority" line for
// hostCA, so ssh accepts s only if s presents a host certificate from hostCA.
func WriteKnownHosts(t testing.TB, path string, s *Server, hostCA ssh.PublicKey) {
	t.Helper()
	if err := writeKnownHosts(path, s, hostCA); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

func writeKnownHosts(path string, s *Server, hostCA ssh.PublicKey) error {
	var line string
	if hostCA == nil {
		line = s.KnownHostsPattern() + " " + string(ssh.MarshalAuthorizedKey(s.HostKey))
	} else {
		line = "@cert-authority " + s.KnownHostsPattern() + " " + string(ssh.MarshalAuthorizedKey(hostCA))
	}
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}

func writeDefaultKnownHosts(s *Server, cfg Config) error {
	var ca ssh.PublicKey
	if cfg.HostCA != nil {
		ca = cfg.HostCA.PublicKey()
	}
	return writeKnownHosts(s.KnownHosts, s, ca)
}

// SSHCommand returns the stock ssh client command that logs in to s as
// s.Login with the private key at keyPath:
//
//	ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes
//	    -o UserKnownHostsFile=s.KnownHosts -o GlobalKnownHostsFile=/dev/null
//	    -o IdentitiesOnly=yes -i keyPath -p PORT LOGIN@HOST args...
//
// OpenSSH loads the certificate keyPath-cert.pub beside the key by itself.
// args follow the destination: ssh still parses leading options there
// (e.g. "-tt"), then the remote command. The caller runs the command.
func SSHCommand(t testing.TB, s *Server, keyPath string, args ...string) *exec.Cmd {
	t.Helper()
	Require(t, "ssh")
	base := []string{
		"-F", "none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + s.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes",
		"-o", "PreferredAuthentications=publickey",
		"-o", "ConnectTimeout=10",
		"-i", keyPath,
		"-p", strconv.Itoa(s.Port),
		s.Login + "@" + s.host(),
	}
	return exec.Command(Path("ssh"), append(base, args...)...)
}

// NewUserKey generates an ed25519 key pair and writes it to dir/name (0600,
// OpenSSH PEM) and dir/name.pub, for use with SSHCommand. It returns the
// private key path and the signer.
func NewUserKey(t testing.TB, dir, name string) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshdtest: generate user key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatalf("sshdtest: marshal user key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("sshdtest: user signer: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshdtest: write user key: %v", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatalf("sshdtest: write user public key: %v", err)
	}
	return path, signer
}

// WriteCert writes cert as keyPath-cert.pub, where ssh picks it up for the
// key at keyPath.
func WriteCert(t testing.TB, keyPath string, cert *ssh.Certificate) {
	t.Helper()
	if err := os.WriteFile(keyPath+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatalf("sshdtest: write certificate: %v", err)
	}
}
