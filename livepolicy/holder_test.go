package livepolicy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/policy"
)

// fakeUsers is a UserSource a test sets.
type fakeUsers struct {
	mu    sync.Mutex
	users []audit.User
	hosts []audit.Host
	err   error
}

func (f *fakeUsers) Hosts(context.Context) ([]audit.Host, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts, f.err
}

func (f *fakeUsers) Users(context.Context) ([]audit.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users, f.err
}

func (f *fakeUsers) set(users []audit.User, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users, f.err = users, err
}

func writePolicy(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, testkit.BadPolicy)
	if _, err := Load(context.Background(), path, &fakeUsers{}); err == nil || !strings.Contains(err.Error(), "policy.yaml:2") {
		t.Fatalf("Load of a bad file = %v, want an error naming line 2", err)
	}
	if _, err := Load(context.Background(), filepath.Join(t.TempDir(), "none.yaml"), &fakeUsers{}); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	writePolicy(t, path, string(policy.Demo()))
	if _, err := Load(context.Background(), path, &fakeUsers{err: errors.New("store down")}); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("Load with the users unreadable = %v, want the store's error", err)
	}
}

// TestReloadKeepsLastGood: a bad file or an unreadable store leaves the
// policy in force as it was; enrolled users are merged in on reload and on
// refresh.
func TestReloadKeepsLastGood(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, string(policy.Demo()))
	users := &fakeUsers{}
	h, err := Load(ctx, path, users)
	if err != nil {
		t.Fatal(err)
	}
	good := h.Current()
	writePolicy(t, path, testkit.BadPolicy)
	if err := h.Reload(ctx); err == nil || !strings.Contains(err.Error(), "policy.yaml:2") {
		t.Fatalf("Reload of a bad file = %v, want an error naming line 2", err)
	}
	if h.Current() != good {
		t.Fatal("a bad reload replaced the policy in force")
	}

	key := testkit.Signer(t).PublicKey()
	zoe := audit.User{Name: "zoe", Groups: []string{"dev"}, Keys: []string{string(ssh.MarshalAuthorizedKey(key))}}
	users.set([]audit.User{zoe}, nil)
	if err := h.RefreshUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if u, ok := h.Current().UserByKey(key); !ok || u.Name != "zoe" {
		t.Fatalf("enrolled user not merged by RefreshUsers: %+v %v", u, ok)
	}

	// With the store unreadable, a good new file is not applied, neither
	// now nor by a later refresh.
	writePolicy(t, path, testkit.Edit(t, string(policy.Demo()), "  carol: {groups: [dev], keys: []}\n", ""))
	users.set(nil, errors.New("store down"))
	before := h.Current()
	if err := h.Reload(ctx); err == nil {
		t.Fatal("Reload with the store unreadable succeeded")
	}
	users.set([]audit.User{zoe}, nil)
	if err := h.RefreshUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Current().User("carol"); !ok || Diff(before, h.Current()).String() != "no change" {
		t.Fatalf("a failed reload was applied later: %v", Diff(before, h.Current()))
	}
	if ch, err := h.ReloadChange(ctx); err != nil || ch.String() != "users -carol" {
		t.Fatalf("ReloadChange = %q, %v; want users -carol", ch, err)
	}

	// A stored key that does not parse is left out and reported.
	users.set([]audit.User{zoe, {Name: "yan", Groups: []string{"dev"}, Keys: []string{"ssh-ed25519 garbage"}}}, nil)
	if err := h.RefreshUsers(ctx); err == nil || !strings.Contains(err.Error(), `"yan"`) {
		t.Fatalf("RefreshUsers with a bad stored key = %v, want an error naming yan", err)
	}
	if u, ok := h.Current().User("yan"); !ok || len(u.Keys) != 0 {
		t.Fatalf("yan = %+v %v, want enrolled without keys", u, ok)
	}
	// A reload succeeds all the same: the file is in force, and the change
	// says what was left out (it used to be reported as a failed reload
	// although it was applied).
	if ch, err := h.ReloadChange(ctx); err != nil || len(ch.Skipped) != 1 || !strings.Contains(ch.String(), `left out: enrolled user "yan"`) {
		t.Fatalf("ReloadChange with a bad stored key = %q, %v; want success that names yan as left out", ch, err)
	}
	if _, err := Load(ctx, h.path, users); err != nil {
		t.Fatalf("Load with a bad stored key: %v; want the key left out, not a daemon that cannot start", err)
	}
}

// TestReloadRefusesKeyOfEnrolledUser: a reloaded file whose user holds a key
// enrolled for another name is refused, naming both, and the policy in
// force stays; the same key enrolled for the same name is a merge.
func TestReloadRefusesKeyOfEnrolledUser(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, string(policy.Demo()))
	key := testkit.Signer(t).PublicKey()
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	users := &fakeUsers{users: []audit.User{{Name: "mallory", Groups: []string{"dev"}, Keys: []string{line}}}}
	h, err := Load(ctx, path, users)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Current()
	tests := []struct {
		name, owner string
		wantErr     bool
	}{
		{name: "same key under another name", owner: "mallory", wantErr: true},
		{name: "same key under the same name", owner: "mallory", wantErr: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fileUser := "carol"
			if !tt.wantErr {
				fileUser = tt.owner
			}
			text := strings.Replace(string(policy.Demo()), "  carol: {groups: [dev], keys: []}\n",
				"  "+fileUser+": {groups: [dev], keys: ["+strconv.Quote(line)+"]}\n", 1)
			writePolicy(t, path, text)
			err := h.Reload(ctx)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Reload = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), `user "carol"`) || !strings.Contains(err.Error(), `enrolled for user "mallory"`) {
				t.Fatalf("Reload = %v, want a refusal naming carol and mallory", err)
			}
			if h.Current() != before {
				t.Fatal("a refused reload replaced the policy in force")
			}
		})
	}
}
