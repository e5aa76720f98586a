package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// TestKeyBelongsToOneUser: the key is what tells a requester from an
// approver, so no path enrols one key under two names (jitd user add, jit
// admin user add, racing enrolments), a store that already holds a shared
// key (written before the rule) logs nobody in with it and says what to run,
// and jit admin user dups / remove-key end the sharing.
func TestKeyBelongsToOneUser(t *testing.T) {
	t.Parallel()
	alice, erin, admin, auditor := newEngineer(t, "alice"), newEngineer(t, "erin"), newEngineer(t, "admin"), newEngineer(t, "auditor")
	d := initDaemon(t)
	aliceKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(alice.AuthorizedKey))
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(aliceKey)
	// A store written before the rule: mallory enrolled with alice's key.
	legacyEnrol(t, d, audit.User{Name: "alice", Groups: []string{"dev"}, Keys: []string{alice.AuthorizedKey}},
		audit.User{Name: "mallory", Groups: []string{"dev"}, Keys: []string{alice.AuthorizedKey}})
	d.serve(t, renderPolicy(t, adminPolicy, "", []*engineer{alice, erin, admin, auditor}, nil))
	d.login(t, admin)
	loginArgs := []string{"login", "--ca", "https://" + d.API, "--fingerprint", d.Fingerprint, "-i", alice.Key, "--user"}

	t.Run("shared key in the store logs nobody in", func(t *testing.T) {
		for _, name := range []string{"alice", "mallory"} {
			_, stderr, code := run(t, alice, append(loginArgs, name)...)
			if code == 0 || !strings.Contains(stderr, "key_shared") || !strings.Contains(stderr, "alice, mallory") ||
				!strings.Contains(stderr, "jit admin user remove-key") {
				t.Errorf("login as %s with a shared key: exit %d, stderr %q; want key_shared naming alice, mallory and the fix", name, code, stderr)
			}
		}
		out := mustRun(t, admin, "admin", "user", "dups")
		if !strings.Contains(out, fp) || !strings.Contains(out, "users=alice,mallory") {
			t.Fatalf("jit admin user dups = %q, want %s held by alice,mallory", out, fp)
		}
		if out := mustRun(t, admin, "admin", "user", "remove-key", "mallory", fp); !strings.Contains(out, "removed key") {
			t.Errorf("remove-key printed %q", out)
		}
		if out := mustRun(t, admin, "admin", "user", "dups"); !strings.Contains(out, "no key is held by more than one user") {
			t.Errorf("jit admin user dups after the fix = %q", out)
		}
		mustRun(t, alice, append(loginArgs, "alice")...)
		if _, _, code := run(t, alice, append(loginArgs, "mallory")...); code == 0 {
			t.Error("mallory still logs in with alice's key after remove-key")
		}
		evs := auditList(t, admin, "--event", "admin.user.remove_key")
		if _, ok := findEvent(evs, "admin.user.remove_key", func(e auditEvent) bool { return e.User == "mallory" }); !ok {
			t.Errorf("remove-key not audited: %+v", evs)
		}
	})

	t.Run("every enrolment path refuses another user's key", func(t *testing.T) {
		tests := []struct {
			name, owner string
			enrol       func() (string, int)
		}{
			{name: "jitd user add, enrolled key", owner: "alice", enrol: func() (string, int) {
				return jitdRun(t, "user", "add", "--data", d.Data, "mallory", "--key", pubFile(t, alice), "--group", "dev")
			}},
			{name: "jit admin user add, enrolled key", owner: "alice", enrol: func() (string, int) {
				_, stderr, code := run(t, admin, "admin", "user", "add", "mallory", "--key", pubFile(t, alice), "--group", "dev")
				return stderr, code
			}},
			{name: "jit admin user add, policy file key", owner: "auditor", enrol: func() (string, int) {
				_, stderr, code := run(t, admin, "admin", "user", "add", "mallory", "--key", pubFile(t, auditor), "--group", "dev")
				return stderr, code
			}},
		}
		for _, tt := range tests {
			out, code := tt.enrol()
			if code == 0 || !strings.Contains(out, "key_in_use") || !strings.Contains(out, `user "`+tt.owner+`"`) {
				t.Errorf("%s: exit %d, output %q; want key_in_use naming %s", tt.name, code, out, tt.owner)
			}
		}
	})

	t.Run("racing enrolments of one key", func(t *testing.T) {
		const racers = 4
		codes := make([]int, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, codes[i] = run(t, admin, "admin", "user", "add", "racer"+string(rune('a'+i)), "--key", pubFile(t, erin), "--group", "dev")
			}()
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			if c == 0 {
				ok++
			}
		}
		if ok != 1 {
			t.Errorf("%d racing enrolments of one key succeeded (exit codes %v), want exactly 1", ok, codes)
		}
	})

	t.Run("reload refuses a file key enrolled under another name", func(t *testing.T) {
		policy := renderPolicy(t, adminPolicy, "", []*engineer{alice, erin, admin, auditor}, nil)
		withErin := strings.Replace(policy, "alice: {groups: [dev], keys: []}", "alice: {groups: [dev], keys: ["+strconv.Quote(erin.AuthorizedKey)+"]}", 1)
		if withErin == policy {
			t.Fatal("policy template changed: alice has keys")
		}
		secWrite(t, filepath.Join(d.Data, "policy.yaml"), []byte(withErin))
		_, stderr, code := run(t, admin, "admin", "reload")
		if code == 0 || !strings.Contains(stderr, `user "alice"`) || !strings.Contains(stderr, `is enrolled for user "racer`) {
			t.Errorf("reload of a file giving alice racer's key: exit %d, stderr %q; want a refusal naming both", code, stderr)
		}
		mustRun(t, alice, append(loginArgs, "alice")...)
	})
}

// legacyEnrol writes users straight into the stopped daemon's store, as a
// jitd before the one-owner rule could have.
func legacyEnrol(t *testing.T, d *daemon, users ...audit.User) {
	t.Helper()
	store, err := audit.Open(d.Data + "/jitssh.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	err = store.Do(context.Background(), func(tx *audit.Tx) error {
		for _, u := range users {
			u.CreatedAt = time.Now()
			if err := tx.PutUser(u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// jitdRun runs jitd with args and returns its combined output and exit code.
func jitdRun(t testing.TB, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "jitd"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("jitd %s: %v", strings.Join(args, " "), err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
