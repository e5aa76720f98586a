package hostaccount_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// TestCreateIdempotent: a second create for the same login and grant
// answers the account made by the first; for another grant it is refused.
func TestCreateIdempotent(t *testing.T) {
	tg := newTarget(t)
	first := tg.mustOK(t, "create", createReq("jit-idem", "req_1"))
	again := tg.mustOK(t, "create", createReq("jit-idem", "req_1"))
	if len(again.Accounts) != 1 || again.Accounts[0] != first.Accounts[0] || again.HighWater != first.HighWater {
		t.Fatalf("second create answered %+v, first %+v", again, first)
	}
	tg.mustFail(t, "create", createReq("jit-idem", "req_2"), api.AccountCodeNameExists)
	if n := strings.Count(tg.read(t, "/etc/passwd"), "\njit-idem:"); n != 1 {
		t.Fatalf("%d passwd entries for jit-idem", n)
	}
}

// TestCollisions: a login, group, home, crontab or mail spool already on
// the host is never adopted, nor a managed group with a member jitssh did
// not make: name_exists, and the host and the record are as they were.
func TestCollisions(t *testing.T) {
	tg := newTarget(t)
	tests := []struct {
		name, login string
		setup       string // a shell command run inside first
	}{
		{"existing user", "jit-taken-user", "useradd -l -M jit-taken-user"},
		{"existing group", "jit-taken-group", "groupadd jit-taken-group"},
		{"existing home", "jit-taken-home", "mkdir /home/jit-taken-home && touch /home/jit-taken-home/.bashrc"},
		{"leftover crontab", "jit-taken-cron", "echo '* * * * * id' > /var/spool/cron/crontabs/jit-taken-cron"},
		{"leftover mail spool", "jit-taken-mail", "echo old > /var/mail/jit-taken-mail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg.p.Run(t, "sh", "-c", tt.setup)
			before := tg.read(t, "/etc/passwd") + tg.read(t, "/etc/group") + tg.read(t, "/etc/shadow")
			ans := tg.mustFail(t, "create", createReq(tt.login, "req_c"), api.AccountCodeNameExists)
			if after := tg.read(t, "/etc/passwd") + tg.read(t, "/etc/group") + tg.read(t, "/etc/shadow"); after != before {
				t.Fatalf("refused create (%s) changed the account files", ans.Error)
			}
			if list := tg.mustOK(t, "list", struct{}{}); len(list.Accounts) != 0 || list.HighWater != 0 {
				t.Fatalf("refused create left a record: %+v", list)
			}
		})
	}
	t.Run("managed group with a foreign member", func(t *testing.T) {
		tg.p.Run(t, "sh", "-c", "groupadd jitssh-ephemeral && useradd -l -M -G jitssh-ephemeral jit-intruder")
		tg.mustFail(t, "create", createReq("jit-fresh", "req_c"), api.AccountCodeNameExists)
		if tg.hasEntry(t, "passwd", "jit-fresh") {
			t.Fatal("jit-fresh was made")
		}
		// The intruder is not the helper's either.
		tg.mustFail(t, "remove", api.AccountRequest{Login: "jit-intruder", Grant: "req_c", UID: 1000}, api.AccountCodeNotManaged)
		tg.mustFail(t, "remove", api.AccountRequest{Login: "jit-taken-user", Grant: "req_c", UID: 1000}, api.AccountCodeNotManaged)
		if !tg.hasEntry(t, "passwd", "jit-intruder") || !tg.hasEntry(t, "passwd", "jit-taken-user") {
			t.Fatal("a user jitssh did not make was removed")
		}
	})
}

// TestUIDs: the UID is the lowest free one above the high-water mark and
// the request's minimum, skipping UIDs taken on the host; a removed
// account's UID is never handed out again, the mark survives in the
// record, and an exhausted range is refused.
func TestUIDs(t *testing.T) {
	tg := newTarget(t)
	uid := func(login string, min, max int) api.AccountAnswer {
		t.Helper()
		req := createReq(login, "req_u")
		req.UIDMin, req.UIDMax = min, max
		return tg.mustOK(t, "create", req)
	}
	if a := uid("jit-u1", 71000, 71010); a.Accounts[0].UID != 71000 {
		t.Fatalf("first uid %d", a.Accounts[0].UID)
	}
	tg.p.Run(t, "sh", "-c", "useradd -l -M -u 71001 standing && groupadd -g 71002 standinggroup")
	if a := uid("jit-u2", 71000, 71010); a.Accounts[0].UID != 71003 {
		t.Fatalf("uid after taken 71001 (user) and 71002 (group): %d", a.Accounts[0].UID)
	}
	tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-u1", Grant: "req_u", UID: 71000})
	tg.mustOK(t, "remove", api.AccountRequest{Login: "jit-u2", Grant: "req_u", UID: 71003})
	if a := uid("jit-u3", 71000, 71010); a.Accounts[0].UID != 71004 || a.HighWater != 71004 {
		t.Fatalf("uid after removals: %+v (71000 and 71003 must never come back)", a)
	}
	if a := uid("jit-u4", 71008, 71010); a.Accounts[0].UID != 71008 {
		t.Fatalf("uid with the daemon's mirrored minimum 71008: %d", a.Accounts[0].UID)
	}
	if !strings.Contains(tg.read(t, api.AccountStateDir+"/"+api.AccountStateFile), `"high_water": 71008`) {
		t.Fatalf("record lacks the high-water mark:\n%s", tg.read(t, api.AccountStateDir+"/"+api.AccountStateFile))
	}
	uid("jit-u5", 71000, 71010)
	uid("jit-u6", 71000, 71010)
	req := createReq("jit-u7", "req_u")
	req.UIDMin, req.UIDMax = 71000, 71010
	ans := tg.mustFail(t, "create", req, api.AccountCodeUIDRangeExhausted)
	if ans.HighWater != 71010 || tg.hasEntry(t, "passwd", "jit-u7") {
		t.Fatalf("exhausted range: %+v", ans)
	}
}

// TestConcurrentCreates: runs on one host serialise on the lock, so each
// gets its own UID and the record keeps all of them.
func TestConcurrentCreates(t *testing.T) {
	tg := newTarget(t)
	const n = 6
	var wg sync.WaitGroup
	answers := make([]api.AccountAnswer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], _ = tg.call(t, "create", createReq("jit-par-"+itoa(i), "req_p"))
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, a := range answers {
		if !a.OK || len(a.Accounts) != 1 || seen[a.Accounts[0].UID] {
			t.Fatalf("create %d: %+v (uids so far %v)", i, a, seen)
		}
		seen[a.Accounts[0].UID] = true
	}
	if list := tg.mustOK(t, "list", struct{}{}); len(list.Accounts) != n || list.HighWater != 71000+n-1 {
		t.Fatalf("list after %d parallel creates: %+v", n, list)
	}
}

// TestRequestRefused: an unknown operation exits 2, a bad request 1, both
// with bad_request and nothing done.
func TestRequestRefused(t *testing.T) {
	tg := newTarget(t)
	tests := []struct {
		name, op, body string
		wantExit       int
	}{
		{"unknown operation", "bash", `{}`, api.AccountExitUsage},
		{"command line", "create; id", `{}`, api.AccountExitUsage},
		{"unknown field", "list", `{"all":true}`, api.AccountExitFailed},
		{"not ephemeral", "remove", `{"login":"root","grant":"g","uid":1000}`, api.AccountExitFailed},
		{"sudoers injection", "create", `{"login":"jit-x","grant":"g","uid_min":71000,"uid_max":71001,"shell":"/bin/sh","sudo":["/bin/ls\njit-x ALL=(ALL) ALL"]}`, api.AccountExitFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, code := tg.call(t, tt.op, tt.body)
			if code != tt.wantExit || ans.Code != api.AccountCodeBadRequest {
				t.Fatalf("exit %d answer %+v, want exit %d bad_request", code, ans, tt.wantExit)
			}
		})
	}
	if tg.hasEntry(t, "passwd", "jit-x") || tg.exists(t, api.AccountStateDir) {
		t.Fatal("a refused request changed the host")
	}
}
