package hostaccount_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/testkit"
)

// startAs starts cmd inside the target as uid (setpriv, as a login's
// process would be) and returns it; it is waited for in t.Cleanup.
func startAs(t *testing.T, tg *target, uid int, cmd ...string) *started {
	t.Helper()
	id := itoa(uid)
	args := append([]string{"--reuid=" + id, "--regid=" + id, "--clear-groups"}, cmd...)
	c := tg.p.Command(context.Background(), "setpriv", args...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := &started{done: make(chan struct{})}
	go func() { _ = c.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = c.Process.Kill()
		<-p.done
	})
	return p
}

// started is a process of startAs; done closes once it has exited and been
// reaped (read it, never the Cmd's ProcessState, which Wait writes).
type started struct{ done chan struct{} }

// exited reports whether the process has exited and been reaped.
func (p *started) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// TestRemove: remove kills every process of the account (a sleep and a
// shell that keeps forking) and removes it with its group, home, sudoers
// file, crontab, mail spool and at jobs; a second remove is a no-op.
func TestRemove(t *testing.T) {
	tg := newTarget(t)
	req := createReq("jit-rm", "req_r")
	req.Sudo = []string{"/usr/bin/id"}
	a := tg.mustOK(t, "create", req).Accounts[0]
	tg.p.Run(t, "sh", "-c", `echo '* * * * * id' | crontab -u jit-rm - && echo mail > /var/mail/jit-rm && chown jit-rm /var/mail/jit-rm &&
		echo true | runuser -u jit-rm -- at now + 1 hour 2>/dev/null; touch /home/jit-rm/left`)
	if jobs := tg.p.Run(t, "sh", "-c", "find /var/spool/cron/atjobs -type f -user jit-rm | wc -l"); strings.TrimSpace(jobs) != "1" {
		t.Fatalf("at job not queued: %q", jobs)
	}
	sleeper := startAs(t, tg, a.UID, "sleep", "600")
	startAs(t, tg, a.UID, "sh", "-c", "while :; do sleep 600 & sleep 0.01; done")
	testkit.WaitFor(t, 5*time.Second, "the account's processes", func() bool {
		l := tg.mustOK(t, "list", struct{}{})
		return len(l.Accounts) == 1 && l.Accounts[0].Processes >= 3
	})
	ans := tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-rm", Grant: "req_r", UID: a.UID})
	if len(ans.Accounts) != 1 || ans.Accounts[0].Login != "jit-rm" || ans.HighWater != a.UID {
		t.Fatalf("remove answered %+v", ans)
	}
	testkit.WaitFor(t, 5*time.Second, "the sleep to be reaped", sleeper.exited)
	for _, db := range []string{"passwd", "group", "shadow", "gshadow"} {
		if tg.hasEntry(t, db, "jit-rm") {
			t.Errorf("%s still has jit-rm", db)
		}
	}
	if strings.Contains(tg.read(t, "/etc/group"), "jit-rm") {
		t.Errorf("jit-rm is still a member of a group")
	}
	for _, p := range []string{"/home/jit-rm", "/etc/sudoers.d/jitssh-jit-rm", "/var/spool/cron/crontabs/jit-rm", "/var/mail/jit-rm"} {
		if tg.exists(t, p) {
			t.Errorf("%s left", p)
		}
	}
	if jobs := tg.p.Run(t, "find", "/var/spool/cron/atjobs", "-type", "f", "-uid", itoa(a.UID)); jobs != "" {
		t.Errorf("at jobs left: %s", jobs)
	}
	// Killed orphans are zombies until init reaps them; none may live.
	if out := tg.p.Run(t, "sh", "-c", "ps -o stat=,args= -u "+itoa(a.UID)+" | grep -v '^Z' || echo none"); strings.TrimSpace(out) != "none" {
		t.Errorf("processes of %d left: %s", a.UID, out)
	}
	if again := tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-rm", Grant: "req_r", UID: a.UID}); len(again.Accounts) != 0 {
		t.Fatalf("second remove answered %+v", again)
	}
}

// TestRemoveRefused: a UID or grant other than the recorded ones is
// not_managed and the account stays; so is a recorded account taken out
// of the managed group on the host (the helper needs both marks).
func TestRemoveRefused(t *testing.T) {
	tg := newTarget(t)
	a := tg.mustOK(t, "create", createReq("jit-keep", "req_k")).Accounts[0]
	for _, req := range []api.AccountRequest{
		{Login: "jit-keep", Grant: "req_k", UID: a.UID + 1},
		{Login: "jit-keep", Grant: "req_other", UID: a.UID},
	} {
		tg.mustFail(t, "remove", req, api.AccountCodeNotManaged)
	}
	if !tg.hasEntry(t, "passwd", "jit-keep") || !tg.exists(t, "/home/jit-keep") {
		t.Fatal("a refused remove removed the account")
	}
	right := api.AccountRequest{Login: "jit-keep", Grant: "req_k", UID: a.UID}
	tg.p.Run(t, "gpasswd", "-d", "jit-keep", "jitssh-ephemeral")
	tg.mustFail(t, "remove", right, api.AccountCodeNotManaged)
	tg.mustFail(t, "reap", struct{}{}, api.AccountCodeNotManaged)
	if !tg.hasEntry(t, "passwd", "jit-keep") {
		t.Fatal("an account out of the managed group was removed")
	}
	tg.p.Run(t, "gpasswd", "-a", "jit-keep", "jitssh-ephemeral")
	if ans := tg.mustOK(t, "remove", right); len(ans.Accounts) != 1 || tg.hasEntry(t, "passwd", "jit-keep") {
		t.Fatalf("remove after the group is back: %+v", ans)
	}
}

// TestReapAndList: list counts each account's processes; reap removes
// every managed account not kept and leaves the others (and users jitssh
// did not make) alone.
func TestReapAndList(t *testing.T) {
	tg := newTarget(t)
	var uids []int
	for _, l := range []string{"jit-r1", "jit-r2", "jit-r3"} {
		uids = append(uids, tg.mustOK(t, "create", createReq(l, "req_"+l[4:])).Accounts[0].UID)
	}
	tg.p.Run(t, "useradd", "-l", "-M", "jit-standing")
	startAs(t, tg, uids[1], "sleep", "600")
	startAs(t, tg, uids[1], "sleep", "600")
	testkit.WaitFor(t, 5*time.Second, "two processes of jit-r2", func() bool {
		l := tg.mustOK(t, "list", struct{}{})
		return len(l.Accounts) == 3 && l.Accounts[1].Processes == 2 && l.Accounts[0].Processes == 0
	})
	ans := tg.mustOK(t, "reap", api.AccountRequest{Keep: []string{"jit-r2"}})
	if len(ans.Accounts) != 2 || ans.Accounts[0].Login != "jit-r1" || ans.Accounts[1].Login != "jit-r3" {
		t.Fatalf("reap answered %+v", ans)
	}
	list := tg.mustOK(t, "list", struct{}{})
	if len(list.Accounts) != 1 || list.Accounts[0].Login != "jit-r2" || list.Accounts[0].Processes != 2 {
		t.Fatalf("list after reap: %+v", list)
	}
	if !tg.hasEntry(t, "passwd", "jit-standing") || !tg.hasEntry(t, "passwd", "jit-r2") || tg.hasEntry(t, "passwd", "jit-r1") {
		t.Fatal("reap removed the wrong accounts")
	}
}
