package sshdtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// newServer makes the Server value and its directories for cfg: a fresh
// t.TempDir(), or the stock layout under cfg.Root.
func newServer(t testing.TB, cfg Config) (*Server, error) {
	t.Helper()
	host := cfg.ListenHost
	if host == "" {
		host = "127.0.0.1"
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("config: ListenHost %q is not an IP address: %w", host, err)
	}
	s := &Server{Host: host, Login: LocalUser(t)}
	if cfg.Root == "" {
		s.Dir = t.TempDir()
	} else {
		if len(cfg.TrustedUserCAKeys) > 0 || len(cfg.Principals) > 0 || cfg.HostCA != nil || cfg.RevokedKeys != "" {
			return nil, errors.New("config: with Root, the drop-ins say whom to trust; TrustedUserCAKeys, Principals, HostCA and RevokedKeys must be empty")
		}
		var err error
		if s.Dir, err = rootLayout(cfg.Root); err != nil {
			return nil, err
		}
	}
	s.Config = filepath.Join(s.Dir, "sshd_config")
	s.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	return s, nil
}

// rootLayout makes the directories of a stock host under root and returns
// root/etc/ssh: sshd_config, the host key ssh_host_ed25519_key and the
// empty drop-in directory sshd_config.d live there, the pid file in
// root/run/sshd.pid, where a host installer looks for it.
func rootLayout(root string) (string, error) {
	dir := filepath.Join(root, "etc", "ssh")
	for _, d := range []string{filepath.Join(dir, "sshd_config.d"), filepath.Join(root, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("make %s: %w", d, err)
		}
	}
	return dir, nil
}

// pidFile is where sshd writes its pid.
func pidFile(f serverFiles) string {
	if f.root != "" {
		return filepath.Join(f.root, "run", "sshd.pid")
	}
	return filepath.Join(filepath.Dir(f.hostKey), "sshd.pid")
}

// pickPort is cfg.Port, or a free port of host, or 22 when sshd runs
// through a wrapper (in a namespace of its own).
func pickPort(cfg Config, host string) (int, error) {
	switch {
	case cfg.Port != 0:
		return cfg.Port, nil
	case cfg.Wrap != nil:
		return 22, nil
	default:
		return freePort(host)
	}
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago, for
// Config.Port.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	return port
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command is sshd with args, run through cfg.Wrap if set.
func (s *Server) command(cfg Config, sshd string, args ...string) *exec.Cmd {
	if cfg.Wrap == nil {
		return exec.Command(sshd, args...)
	}
	argv := cfg.Wrap(sshd, args...)
	return exec.Command(argv[0], argv[1:]...)
}

// CommandDir makes a directory for programs sshd runs, such as an
// AuthorizedPrincipalsCommand, and removes it in t.Cleanup. sshd runs a
// command only if the command and every directory above it are owned by
// root and writable by nobody else, which rules out anything under /tmp
// (mode 1777); so the directory is made under /run (a tmpfs, root's, mode
// 0755) with mode 0755, which the user nobody can also traverse. It needs
// root: the test skips without it, or fails with CI=true.
func CommandDir(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "sshdtest: a directory sshd runs commands from needs root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("/run", "jitssh-test-")
	if err != nil {
		t.Fatalf("sshdtest: make command directory: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("sshdtest: remove %s: %v", dir, err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("sshdtest: chmod %s: %v", dir, err)
	}
	return dir
}
