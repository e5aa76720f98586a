package hostjoin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
)

// Options are the knobs of jit host join and renew.
type Options struct {
	Layout Layout
	// HostKey is the private host key's path; "" means
	// ROOT/etc/ssh/ssh_host_ed25519_key (for renew: the one join used).
	HostKey string
	// SSHD is the sshd binary for the check; "" means sshd found by FindSSHD.
	SSHD string
	// ReloadCommand replaces the default reload (see NewReloader).
	ReloadCommand string
	// Jit is the absolute path of the jit binary (AuthorizedPrincipalsCommand).
	Jit string
	// DryRun computes the plan and changes nothing; a join then does not
	// call jitd, since its token can be used once.
	DryRun bool
	// Force renews the certificate even when it is not due (see Renew).
	Force bool
}

// Result is what a join or renewal did (or, dry, would do).
type Result struct {
	Host    string
	Changes []Change
	DropIn  string
	// Reload says how sshd was (or would be) reloaded; "" when nothing changed.
	Reload   string
	CronLine string
	// RenewBefore is when jitd asks for the next renewal (zero in a dry join).
	RenewBefore time.Time
	// Notes are warnings that did not undo the switch.
	Notes []string
}

// Join enrols this host with a join token: it sends the public host key
// to jitd at caURL (TLS pinned to fingerprint), checks the answer, and
// switches sshd over to the installation (see Switch). On any error
// before the switch nothing on disk has changed.
func Join(ctx context.Context, o Options, caURL, fingerprint, token string) (Result, error) {
	o = o.withDefaults("")
	pub, err := readPublicKey(o.HostKey + ".pub")
	if err != nil {
		return Result{}, err
	}
	in := Install{Layout: o.Layout, HostKey: o.HostKey, Jit: o.Jit, CA: caURL, Fingerprint: fingerprint}
	unlock, err := preflight(o, in)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if o.DryRun {
		return dry(o, in)
	}
	cl, err := api.NewClient(caURL, fingerprint, "")
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	ans, err := cl.JoinHost(ctx, api.HostJoinRequest{Token: token, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))})
	if err != nil {
		return Result{}, fmt.Errorf("join at %s: %w", caURL, err)
	}
	return apply(ctx, o, in, ans, pub)
}

func (o Options) withDefaults(recorded string) Options {
	if o.HostKey == "" {
		o.HostKey = recorded
	}
	if o.HostKey == "" {
		o.HostKey = o.Layout.Path(DefaultHostKey)
	}
	return o
}

// preflight refuses, before anything is written or sent, what would fail
// later: no sshd binary, no main configuration, a principals command sshd
// would not run, another join or renewal running (the timer may fire while
// an admin joins). It returns the release of the lock it takes.
func preflight(o Options, in Install) (func(), error) {
	if _, err := FindSSHD(o.SSHD); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Layout.Path(SSHDConfig)); err != nil {
		return nil, fmt.Errorf("no sshd configuration to check: %w", err)
	}
	if err := checkPrincipalsReach(in); err != nil {
		return nil, err
	}
	if err := checkPaths(o.Layout, in.HostKey, in.Files()); err != nil {
		return nil, err
	}
	// Without write access the switch would fail after jitd spent the token.
	if err := syscall.Access(o.Layout.Path("/etc/ssh"), 2 /* W_OK */); err != nil {
		return nil, fmt.Errorf("cannot write %s (run as root): %w", o.Layout.Path("/etc/ssh"), err)
	}
	return lock(o.Layout.Path("/etc/ssh"))
}

func dry(o Options, in Install) (Result, error) {
	changes, err := Plan(in.Files())
	if err != nil {
		return Result{}, err
	}
	r := Result{Changes: changes, DropIn: in.DropInText(), CronLine: in.CronLine(), Reload: NewReloader(o.Layout, o.ReloadCommand).Describe}
	if in.Answer != nil {
		r.Host, r.RenewBefore = in.Answer.Host, in.Answer.RenewBefore
	}
	return r, nil
}

// apply checks jitd's answer and switches to it.
func apply(ctx context.Context, o Options, in Install, ans api.HostJoinResponse, hostKey ssh.PublicKey) (Result, error) {
	if err := CheckAnswer(ans, hostKey, time.Now()); err != nil {
		return Result{}, fmt.Errorf("refusing jitd's answer, nothing changed: %w", err)
	}
	in.Answer = &ans
	r := Result{Host: ans.Host, DropIn: in.DropInText(), CronLine: in.CronLine(), RenewBefore: ans.RenewBefore}
	if err := switchTo(ctx, o, in, in.Files(), &r); err != nil {
		return Result{}, err
	}
	if err := makeStateDir(o.Layout, &r); err != nil {
		return r, err
	}
	if r.Reload != "" {
		r.Notes = append(r.Notes, startTimer(ctx, o)...)
	}
	return r, nil
}

// switchTo runs Switch with sshd's checks and the reload, and says how
// sshd was reloaded ("" when nothing changed). The caller holds the lock.
// switchTo switches sshd over to files and fills r's changes, how sshd was
// reloaded, and a note when an old version could not be removed after a
// successful switch (which is no failure: the new configuration is in force).
func switchTo(ctx context.Context, o Options, in Install, files []File, r *Result) error {
	sshd, err := FindSSHD(o.SSHD)
	if err != nil {
		return err
	}
	rl := NewReloader(o.Layout, o.ReloadCommand)
	changed := false
	changes, err := Switch(files,
		func() error { changed = true; return checkSSHD(ctx, sshd, in) },
		func() error { return rl.Run(ctx) })
	var left *LeftoverError
	if errors.As(err, &left) {
		r.Notes = append(r.Notes, left.Error())
		err = nil
	}
	if err != nil {
		return err
	}
	r.Changes = changes
	if changed {
		r.Reload = rl.Describe
	}
	return nil
}

// lock takes an exclusive flock on dir (a directory every target has, so
// the lock leaves no file behind) and returns its release.
func lock(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: another jit host join or renew is running: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// startTimer makes a running systemd see and start the renewal timer, on
// the machine's own root with the default reload; the link in
// timers.target.wants starts it at every boot anyway.
func startTimer(ctx context.Context, o Options) []string {
	if o.ReloadCommand != "" || !o.Layout.IsHostRoot() || !systemdRuns() {
		return nil
	}
	for _, args := range [][]string{{"daemon-reload"}, {"start", "jitssh-renew.timer"}} {
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			return []string{fmt.Sprintf("systemctl %s: %v: %s (renewal still runs from cron if you add the line below)", strings.Join(args, " "), err, strings.TrimSpace(string(out)))}
		}
	}
	return nil
}

func readPublicKey(path string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the public host key: %w", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("public host key %s: %w", path, err)
	}
	return k, checkHostKeyType(path, k)
}

func checkHostKeyType(path string, k ssh.PublicKey) error {
	if t := k.Type(); t != ssh.KeyAlgoED25519 && t != ssh.KeyAlgoRSA {
		return fmt.Errorf("host key %s is %s; jitssh enrols ed25519 or RSA host keys (give --host-key)", path, t)
	}
	return nil
}

func readSigner(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the private host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private host key %s: %w", path, err)
	}
	return s, checkHostKeyType(path, s.PublicKey())
}

// readHostName reads HostFile: one valid name.
func readHostName(l Layout) (string, error) {
	b, err := os.ReadFile(l.Path(HostFile))
	if err != nil {
		return "", fmt.Errorf("this host has not joined (run jit host join first): %w", err)
	}
	name := strings.TrimSuffix(string(b), "\n")
	if err := validName("host", name); err != nil {
		return "", fmt.Errorf("%s: %w", l.Path(HostFile), err)
	}
	return name, nil
}

// Principals answers sshd's AuthorizedPrincipalsCommand for user: the
// principal "USER@HOST" when user is one of the logins in LoginsFile or an
// ephemeral login in the account helper's managed group (in GroupFile), and for root
// also ProvisionPrincipalsLine (jitd's provisioning login, which only runs
// the helper); else nothing. HOST is this host's name in the policy
// (HostFile).
func Principals(l Layout, user string) (string, error) {
	name, err := readHostName(l)
	if err != nil {
		return "", err
	}
	out, err := loginPrincipal(l, name, user)
	if err != nil {
		return "", err
	}
	if user == "root" {
		out += ProvisionPrincipalsLine(name) + "\n"
	}
	return out, nil
}

// loginPrincipal is Principals' "USER@HOST" line, or "".
func loginPrincipal(l Layout, name, user string) (string, error) {
	if ok, err := ephemeralMember(GroupFile, user); err != nil || ok {
		return user + "@" + name + "\n", err
	}
	b, err := os.ReadFile(l.Path(LoginsFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read logins: %w", err)
	}
	for _, login := range bytes.Split(b, []byte("\n")) {
		if string(login) == user && validName("login", user) == nil {
			return user + "@" + name + "\n", nil
		}
	}
	return "", nil
}
