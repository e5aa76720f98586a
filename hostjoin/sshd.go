package hostjoin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FindSSHD resolves the sshd binary: name as given when it holds a slash,
// else looked up on PATH and then in /usr/sbin and /usr/local/sbin (sshd
// is often not on a user's PATH).
func FindSSHD(name string) (string, error) {
	if name == "" {
		name = "sshd"
	}
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("sshd binary %s: %w", name, err)
		}
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s on PATH, in /usr/sbin or /usr/local/sbin: install openssh-server or give --sshd", name)
}

// checkSSHD runs sshd -t on the main configuration, then sshd -T to prove
// that the drop-in's values are the ones in force: another file read
// first, or a main file without the Include, would silently win.
func checkSSHD(ctx context.Context, sshd string, in Install) error {
	cfg := in.Layout.Path(SSHDConfig)
	if out, err := exec.CommandContext(ctx, sshd, "-t", "-f", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("%s -t -f %s: %w: %s", sshd, cfg, err, strings.TrimSpace(string(out)))
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, sshd, "-T", "-f", cfg)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s -T -f %s: %w: %s", sshd, cfg, err, strings.TrimSpace(stderr.String()))
	}
	got := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		got[k] = append(got[k], v)
	}
	for k, want := range in.inForce() {
		if !contains(got[k], want) {
			return fmt.Errorf("%s -T -f %s: %s in force is %q, not %q: a file sshd reads before %s sets it (sshd keeps the first value), or %s does not Include sshd_config.d/*.conf at its top",
				sshd, cfg, k, got[k], want, in.Layout.Path(DropIn), cfg)
		}
	}
	return nil
}

// Reloader reloads sshd after a switch; Describe says how, for the output.
type Reloader struct {
	Describe string
	run      func(ctx context.Context) error
}

// Run reloads sshd.
func (r Reloader) Run(ctx context.Context) error { return r.run(ctx) }

// NewReloader returns how to reload sshd: command (run by /bin/sh -c)
// when given; else on the machine's own root `systemctl reload ssh` when
// systemd runs, or SIGHUP to the pid in /run/sshd.pid; under another root
// SIGHUP to the pid in ROOT/run/sshd.pid, and nothing when no sshd runs
// from that root (an image being built).
func NewReloader(l Layout, command string) Reloader {
	if command != "" {
		return Reloader{Describe: command, run: func(ctx context.Context) error {
			if out, err := exec.CommandContext(ctx, "/bin/sh", "-c", command).CombinedOutput(); err != nil {
				return fmt.Errorf("reload command %q: %w: %s", command, err, strings.TrimSpace(string(out)))
			}
			return nil
		}}
	}
	if l.IsHostRoot() && systemdRuns() {
		return NewReloader(l, "systemctl reload ssh")
	}
	pidFile := l.Path(PIDFile)
	if _, err := os.Stat(pidFile); !l.IsHostRoot() && errors.Is(err, fs.ErrNotExist) {
		return Reloader{Describe: "none: no sshd runs from " + l.Root + " (no " + pidFile + ")", run: func(context.Context) error { return nil }}
	}
	return Reloader{Describe: "SIGHUP to the pid in " + pidFile, run: func(context.Context) error { return hupPIDFile(pidFile) }}
}

// systemdRuns is sd_booted(3): systemd creates this directory at boot.
func systemdRuns() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func hupPIDFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reload sshd: %w (give --reload-command)", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("reload sshd: %s holds %q, not a pid", path, bounded(strings.TrimSpace(string(b))))
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload sshd: SIGHUP to pid %d from %s: %w", pid, path, err)
	}
	return nil
}

// checkPrincipalsReach refuses an installation whose principals command
// would fail at every login: sshd runs it as nobody only if the binary
// and every directory above it are owned by root and writable by no one
// else (sshd's safe_path), and nobody must be able to run it and to reach
// the files it reads.
func checkPrincipalsReach(in Install) error {
	if !filepath.IsAbs(in.Jit) || strings.ContainsAny(in.Jit, " \t\n\"'\\%") {
		return fmt.Errorf("jit binary %q: sshd needs an absolute path without spaces, quotes or %%", in.Jit)
	}
	for p := in.Jit; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("jit binary %s: %w", in.Jit, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case ok && st.Uid != 0:
			return fmt.Errorf("sshd would refuse to run %s as AuthorizedPrincipalsCommand: %s is owned by uid %d, not root; install jit in /usr/local/bin", in.Jit, p, st.Uid)
		case fi.Mode().Perm()&0o022 != 0:
			return fmt.Errorf("sshd would refuse to run %s as AuthorizedPrincipalsCommand: %s is writable by group or others (mode %04o); install jit in /usr/local/bin", in.Jit, p, fi.Mode().Perm())
		case fi.Mode().Perm()&0o001 == 0:
			return fmt.Errorf("user nobody cannot run %s: %s has mode %04o (others need x)", in.Jit, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	return reachable(in.Layout.Path(Dir))
}

// reachable checks that others may traverse every existing directory on
// the way to dir, so nobody can open the files in it.
func reachable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil && fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("user nobody cannot reach %s: %s has mode %04o (others need x)", dir, d, fi.Mode().Perm())
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("inspect %s: %w", d, err)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
