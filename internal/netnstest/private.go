package netnstest

import (
	"bufio"
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
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// privateStartTimeout bounds the copy of /etc and the mounts of a PrivateRoot.
const privateStartTimeout = 30 * time.Second

// holdScript runs as the one long-lived process of a PrivateRoot, in a fresh
// mount namespace (propagation private, so that nothing it mounts reaches
// the machine) inside the host's network namespace. $1 is the scratch
// directory: a copy of the machine's /etc is bound over /etc as a whole
// (useradd and visudo replace files by rename, which a bind of single files
// refuses), an empty directory over /home, and /var, /usr/local and /run get
// overlays whose writes land in the scratch directory (the mail spool,
// crontabs, at jobs, lastlog, /var/lib/jitssh, the helper's wrapper, sudo's
// timestamps). It
// says "ready" and sleeps until killed; every mount goes with the
// namespace when its last process ends.
const holdScript = `set -e
d="$1"
mount --bind "$d/etc" /etc
mount --bind "$d/home" /home
for m in var usr-local run; do
	target=/$(echo $m | tr - /)
	mount -t overlay overlay -o "lowerdir=$target,upperdir=$d/$m/upper,workdir=$d/$m/work" "$target"
done
echo ready
exec sleep infinity`

// PrivateRoot is a test host with a file system of its own where it
// matters for accounts: one process holds a mount namespace, inside the
// Host's network namespace, in which /etc is a private copy of the
// machine's, /home is empty, and /var, /usr/local and /run are private
// overlays of the machine's. Commands run inside with Argv or Command (nsenter into
// both namespaces), so useradd, userdel, visudo, crontab and a real sshd
// change only the copy.
//
// Its cleanup kills every process left in the mount namespace (the
// holder, and whatever a test started inside), removes the scratch
// directory, and fails the test unless the machine's own account files
// (see MachineAccountPaths) are byte for byte as they were and no mount of
// the scratch directory is visible on the machine.
type PrivateRoot struct {
	// Host is the network namespace the mount namespace is inside.
	Host *Host
	// PID is the holder's process; /proc/PID/root is the namespace's view
	// of the file system.
	PID int
	// Dir is the scratch directory on the machine (the copy of /etc and
	// the overlays' upper directories).
	Dir string
	// mntNS is the holder's mount namespace, as readlink /proc/PID/ns/mnt.
	mntNS string
	// mntRef holds the namespace open until stop has killed its last
	// process: a namespace's inode number is reused once it is freed, and
	// another test's new private root with the same number would
	// otherwise be taken for this one by Processes (and its processes
	// killed by stop).
	mntRef *os.File
}

// MachineAccountPaths are the files and directories of the machine that a
// PrivateRoot's cleanup checks are unchanged: what useradd, userdel,
// groupadd, visudo, crontab, at and the account helper would write. Not
// /var/log/lastlog: every sshd login on the machine (other tests') writes it.
func MachineAccountPaths() []string {
	return []string{
		"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid",
		"/etc/sudoers", "/etc/sudoers.d", "/home", "/var/mail", "/var/spool/cron", "/var/lib/jitssh",
		"/usr/local/sbin", "/run/sudo",
	}
}

// RequirePrivateRoot skips the test unless a PrivateRoot can be made
// (Require, and nsenter, cp and sleep on PATH); with CI=true it fails.
func RequirePrivateRoot(t testing.TB) {
	t.Helper()
	Require(t)
	for _, name := range []string{"nsenter", "cp", "sleep"} {
		if _, err := exec.LookPath(name); err != nil {
			missing(t, fmt.Sprintf("netnstest: %s not found in $PATH; install it with: apt-get install util-linux coreutils", name))
		}
	}
}

// PrivateRoot makes h's private file system and starts its holder. It
// fails the test on any error; everything goes in t.Cleanup, which then
// checks that the machine was left as found.
func (h *Host) PrivateRoot(t testing.TB) *PrivateRoot {
	t.Helper()
	RequirePrivateRoot(t)
	before := machineState(t)
	// Registered first, so it runs last: after the holder and the scratch
	// directory are gone.
	t.Cleanup(func() {
		if diff := testkit.TreeDiff(before, machineState(t)); len(diff) > 0 {
			t.Errorf("netnstest: the machine's account files changed under private host %s: %s", h.Label, strings.Join(diff, ", "))
		}
	})
	dir, err := os.MkdirTemp("", "jitssh-private-")
	if err != nil {
		t.Fatalf("netnstest: %v", err)
	}
	p := &PrivateRoot{Host: h, Dir: dir}
	t.Cleanup(func() { p.stop(t) })
	if err := p.start(); err != nil {
		t.Fatalf("netnstest: private root of %s: %v", h, err)
	}
	return p
}

// start lays out the scratch directory and starts the holder.
func (p *PrivateRoot) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), privateStartTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "cp", "-a", "/etc", filepath.Join(p.Dir, "etc")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy /etc: %w: %s", err, out)
	}
	dirs := []string{"home", "var/upper", "var/work", "usr-local/upper", "usr-local/work", "run/upper", "run/work"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(p.Dir, d), 0o755); err != nil {
			return err
		}
	}
	// The scratch directory is 0700 (MkdirTemp); the overlays' users inside
	// (sshd's privilege-separated child, the account) traverse it.
	if err := os.Chmod(p.Dir, 0o755); err != nil {
		return err
	}
	argv := p.Host.Argv("unshare", "--mount", "--propagation", "private", "sh", "-c", holdScript, "sh", p.Dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start holder: %w", err)
	}
	p.PID = cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reaped here; stop watches /proc
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			return fmt.Errorf("holder did not get ready (%q): %s", line, stderr.String())
		}
	case <-ctx.Done():
		return fmt.Errorf("holder not ready after %v: %s", privateStartTimeout, stderr.String())
	}
	ref, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", p.PID))
	if err != nil {
		return fmt.Errorf("holder's mount namespace: %w", err)
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.PID))
	if err != nil {
		ref.Close()
		return fmt.Errorf("holder's mount namespace: %w", err)
	}
	p.mntNS, p.mntRef = ns, ref
	return nil
}

// Argv is the command line that runs name with args inside the private
// root (both namespaces). nsenter execs the command, so the started
// process is the command itself (as sshdtest.Config.Wrap requires).
func (p *PrivateRoot) Argv(name string, args ...string) []string {
	return append([]string{"nsenter", "-t", strconv.Itoa(p.PID), "-m", "-n", "--", name}, args...)
}

// Command returns the command that runs name with args inside the
// private root.
func (p *PrivateRoot) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := p.Argv(name, args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// Run runs name with args inside the private root, bounded by opTimeout,
// and returns its combined output; it fails the test if the command fails.
func (p *PrivateRoot) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	out, err := p.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netnstest: %s %s in %s: %v: %s", name, strings.Join(args, " "), p.Host, err, out)
	}
	return string(out)
}

// Path is where the machine sees the file the private root sees at
// inside (an absolute path): through /proc/PID/root, so it follows the
// namespace's mounts (the copy of /etc, the overlays).
func (p *PrivateRoot) Path(inside string) string {
	return fmt.Sprintf("/proc/%d/root%s", p.PID, inside)
}

// Processes lists the processes in the private root's mount namespace.
func (p *PrivateRoot) Processes() []int {
	if p.mntNS == "" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns == p.mntNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stop kills every process of the mount namespace (all started by the
// test, inside it), waits for them to go, removes the scratch directory
// and fails t if a process or a mount of it is left.
func (p *PrivateRoot) stop(t testing.TB) {
	t.Helper()
	gone := false
	for attempt := 0; attempt < 50 && !gone; attempt++ {
		pids := p.Processes()
		gone = len(pids) == 0
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if !gone {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if p.mntRef != nil {
		// Only now may the namespace go (with this, its last reference):
		// until the loop above saw it empty, its number was not free for
		// another test's namespace.
		p.mntRef.Close()
	}
	if !gone {
		t.Errorf("netnstest: processes %v still in the private root of %s", p.Processes(), p.Host.Label)
		return
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(mounts), p.Dir) {
		t.Errorf("netnstest: the machine sees a mount of %s (%v)", p.Dir, err)
		return
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		t.Errorf("netnstest: remove %s: %v", p.Dir, err)
	}
}

// machineState is the Tree of each of MachineAccountPaths, "absent" for
// one that does not exist.
func machineState(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, path := range MachineAccountPaths() {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			out[path] = "absent"
			continue
		}
		for k, v := range testkit.Tree(t, path) {
			out[path+k] = v
		}
	}
	return out
}
