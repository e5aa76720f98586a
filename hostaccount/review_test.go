package hostaccount_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/testkit"
)

// withDirectory turns on a second NSS service on the target, as LDAP or
// SSSD would be: libnss-extrausers, whose users and groups are in
// /var/lib/extrausers and not in /etc/passwd or /etc/group.
func withDirectory(t *testing.T, tg *target, passwd, group string) {
	t.Helper()
	if _, err := os.Stat("/usr/share/doc/libnss-extrausers"); err != nil {
		msg := "hostaccount: libnss-extrausers not installed (make deps: apt-get install libnss-extrausers)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	tg.p.Run(t, "sh", "-c", `sed -i -E 's/^(passwd|group):.*/\1: files extrausers/' /etc/nsswitch.conf &&
		mkdir -p /var/lib/extrausers && printf '%s' "$0" > /var/lib/extrausers/passwd && printf '%s' "$1" > /var/lib/extrausers/group`, passwd, group)
}

// TestDirectoryUsers: a name or UID a directory service has is never
// taken (useradd would refuse it, and its undo used to SIGKILL the
// directory user's processes), and a removal never kills processes of a
// UID a directory user has too.
func TestDirectoryUsers(t *testing.T) {
	tg := newTarget(t)
	withDirectory(t, tg, "dirsvc:x:71000:71000::/nonexistent:/bin/sh\njit-ldap:x:5000:5000::/nonexistent:/bin/sh\n", "dirgrp:x:71001:\njit-ldapgrp:x:5001:\n")
	stranger := startAs(t, tg, 71000, "sleep", "600")
	tg.mustFail(t, "create", createReq("jit-ldap", "req_d"), api.AccountCodeNameExists)
	tg.mustFail(t, "create", createReq("jit-ldapgrp", "req_d"), api.AccountCodeNameExists)
	a := tg.mustOK(t, "create", createReq("jit-dir1", "req_d")).Accounts[0]
	if a.UID != 71002 {
		t.Fatalf("create picked uid %d, want 71002 (71000 and 71001 are the directory's)", a.UID)
	}
	// A directory user given the account's UID afterwards: removal must
	// not kill it (kill -1 as the UID would hit it too).
	tg.p.Run(t, "sh", "-c", "echo 'dirlate:x:71002:71002::/nonexistent:/bin/sh' >> /var/lib/extrausers/passwd")
	late := startAs(t, tg, 71002, "sleep", "600")
	tg.mustFail(t, "remove", api.AccountRequest{Login: "jit-dir1", Grant: "req_d", UID: a.UID}, api.AccountCodeNotManaged)
	time.Sleep(300 * time.Millisecond)
	if stranger.exited() || late.exited() {
		t.Fatal("a directory user's process was killed")
	}
}

// TestFailedCreateKeepsUID: a create whose useradd fails before writing
// the user (here /etc/passwd is locked by a live process) gives its UID
// back, so failing creates do not use the range up; the next create gets
// the same UID.
func TestFailedCreateKeepsUID(t *testing.T) {
	tg := newTarget(t)
	tg.p.Run(t, "sh", "-c", "echo "+itoa(tg.p.PID)+" > /etc/passwd.lock")
	ans := tg.mustFail(t, "create", createReq("jit-fail", "req_f"), api.AccountCodeFailed)
	t.Logf("refused: %s", ans.Error)
	if ans.HighWater != 0 {
		t.Fatalf("failed create kept high-water mark %d", ans.HighWater)
	}
	if tg.hasEntry(t, "group", "jit-fail") || tg.exists(t, "/home/jit-fail") {
		t.Fatal("failed create left its group or home")
	}
	tg.p.Run(t, "rm", "/etc/passwd.lock")
	if a := tg.mustOK(t, "create", createReq("jit-fail", "req_f")).Accounts[0]; a.UID != 71000 {
		t.Fatalf("create after the failure got uid %d, want 71000", a.UID)
	}
}

// TestRemoveThroughMountAndLeftovers: a mount in the home (a FUSE mount of
// the engineer's; here a read-only tmpfs) does not stop the removal, the
// sudoers file goes whatever else fails, and RHEL's crontab and at job
// paths and systemd's linger flag go too.
func TestRemoveThroughMountAndLeftovers(t *testing.T) {
	tg := newTarget(t)
	req := createReq("jit-mnt", "req_m")
	req.Sudo = []string{"/usr/bin/id"}
	a := tg.mustOK(t, "create", req).Accounts[0]
	tg.p.Run(t, "sh", "-c", `set -e; d=/home/jit-mnt/fuse; mkdir $d; mount -t tmpfs -o size=1m jitfuse $d; touch $d/f; mount -o remount,ro $d
		echo '* * * * * id' > /var/spool/cron/jit-mnt; mkdir -p /var/lib/systemd/linger /var/spool/at; touch /var/lib/systemd/linger/jit-mnt
		echo true > /var/spool/at/a0001; chown jit-mnt /var/spool/at/a0001`)
	if m := tg.p.Run(t, "sh", "-c", "grep -c jitfuse /proc/self/mountinfo; rm -f /home/jit-mnt/fuse/f 2>&1 || true"); !strings.Contains(m, "Read-only") {
		t.Fatalf("the read-only mount in the home is not in place: %s", m)
	}
	tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-mnt", Grant: "req_m", UID: a.UID})
	for _, p := range []string{"/home/jit-mnt", "/etc/sudoers.d/jitssh-jit-mnt", "/var/spool/cron/jit-mnt", "/var/lib/systemd/linger/jit-mnt", "/var/spool/at/a0001"} {
		if tg.exists(t, p) {
			t.Errorf("%s left", p)
		}
	}
	if m := tg.p.Run(t, "sh", "-c", "grep jitfuse /proc/self/mountinfo || true"); m != "" {
		t.Errorf("mount left: %s", m)
	}
}

// TestRemoveFailureDropsSudoFirst: a removal that cannot finish (the
// home cannot be removed) still takes the sudo rule away at once, and
// answers the failure.
func TestRemoveFailureDropsSudoFirst(t *testing.T) {
	tg := newTarget(t)
	req := createReq("jit-stuck", "req_s")
	req.Sudo = []string{"ALL"}
	a := tg.mustOK(t, "create", req).Accounts[0]
	tg.p.Run(t, "chattr", "+i", "/home/jit-stuck/.bashrc")
	t.Cleanup(func() { _ = tg.p.Command(t.Context(), "chattr", "-i", "/home/jit-stuck/.bashrc").Run() })
	tg.mustFail(t, "remove", api.AccountRequest{Login: "jit-stuck", Grant: "req_s", UID: a.UID}, api.AccountCodeFailed)
	if tg.exists(t, "/etc/sudoers.d/jitssh-jit-stuck") {
		t.Fatal("a failed removal left the sudoers file")
	}
	tg.p.Run(t, "chattr", "-i", "/home/jit-stuck/.bashrc")
	tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-stuck", Grant: "req_s", UID: a.UID})
}

// TestSudoRuleInForce: a host whose /etc/sudoers does not include
// /etc/sudoers.d refuses a create with sudo (sudo_rejected, undone); a
// recorded sudoers file gone missing makes the idempotent create fail;
// a stale temporary sudoers file of a crashed run is swept.
func TestSudoRuleInForce(t *testing.T) {
	tg := newTarget(t)
	req := createReq("jit-sudo1", "req_s")
	req.Sudo = []string{"/usr/bin/id"}
	a := tg.mustOK(t, "create", req).Accounts[0]
	tg.p.Run(t, "rm", "/etc/sudoers.d/jitssh-jit-sudo1")
	tg.mustFail(t, "create", req, api.AccountCodeFailed)
	tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-sudo1", Grant: "req_s", UID: a.UID})

	tg.p.Run(t, "touch", "/etc/sudoers.d/.jitssh-new-1234")
	tg.mustOK(t, "list", struct{}{})
	if tg.exists(t, "/etc/sudoers.d/.jitssh-new-1234") {
		t.Error("stale temporary sudoers file not swept")
	}

	tg.p.Run(t, "sed", "-i", "/includedir/d", "/etc/sudoers")
	req = createReq("jit-sudo2", "req_s2")
	req.Sudo = []string{"/usr/bin/id"}
	ans := tg.mustFail(t, "create", req, api.AccountCodeSudoRejected)
	t.Logf("refused: %s", ans.Error)
	if tg.hasEntry(t, "passwd", "jit-sudo2") || tg.exists(t, "/etc/sudoers.d/jitssh-jit-sudo2") || tg.exists(t, "/home/jit-sudo2") {
		t.Fatal("a create whose sudo rule is not in force was not undone")
	}
	testkit.WaitFor(t, time.Second, "nothing recorded", func() bool { return len(tg.mustOK(t, "list", struct{}{}).Accounts) == 0 })
}
