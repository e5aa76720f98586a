package livepolicy

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// TestSSOIdentitiesExpire checks that an SSO identity whose latest token
// has expired is no longer a user of the policy in force, while a live
// one is, and that neither takes a file user's place.
func TestSSOIdentitiesExpire(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := audit.Open(filepath.Join(dir, "jitssh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	path := filepath.Join(dir, "policy.yaml")
	writePolicy(t, path, "users:\n  alice: {groups: [dev]}\nsso:\n  groups: {eng: [dev]}\n")
	now := time.Now()
	if err := store.Do(ctx, func(tx *audit.Tx) error {
		for _, id := range []audit.SSOIdentity{
			{Name: "erin", Provider: "corp", Subject: "s-erin", Groups: []string{"eng"}, ExpiresAt: now.Add(time.Hour), UpdatedAt: now},
			{Name: "olga", Provider: "corp", Subject: "s-olga", Groups: []string{"eng"}, ExpiresAt: now.Add(-time.Minute), UpdatedAt: now},
			{Name: "alice", Provider: "corp", Subject: "s-alice", Groups: []string{"eng"}, ExpiresAt: now.Add(time.Hour), UpdatedAt: now},
		} {
			if err := tx.PutSSOIdentity(id); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h, err := Load(ctx, path, store)
	if err != nil {
		t.Fatal(err)
	}
	p := h.Current()
	if u, ok := p.User("erin"); !ok || !u.SSO {
		t.Fatalf("live identity erin: %v %+v", ok, u)
	}
	if _, ok := p.User("olga"); ok {
		t.Fatal("olga's identity expired a minute ago but is still a user of the policy in force")
	}
	if u, _ := p.User("alice"); u.SSO || !p.LocalUser("alice") {
		t.Fatalf("the file user alice became an SSO user: %+v", u)
	}
}
