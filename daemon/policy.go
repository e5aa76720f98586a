package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// PolicyState holds the policy in force: the last good parse of the policy
// file, with the users enrolled through the API merged in. Readers never
// block; a bad file on reload leaves the last good policy in force.
type PolicyState struct {
	path  string
	store *audit.Store

	mu       sync.Mutex // serializes Reload and RefreshUsers
	base     *policy.Policy
	enrolled []policy.User
	current  atomic.Pointer[policy.Policy]
}

// LoadPolicy parses the policy file and merges enrolled users. A bad file is
// an error naming file and line: the daemon does not start without a policy.
func LoadPolicy(ctx context.Context, path string, store *audit.Store) (*PolicyState, error) {
	ps := &PolicyState{path: path, store: store}
	if err := ps.Reload(ctx); err != nil {
		return nil, err
	}
	return ps, nil
}

// Current returns the policy in force.
func (ps *PolicyState) Current() *policy.Policy { return ps.current.Load() }

// Reload re-reads the policy file and the enrolled users.
func (ps *PolicyState) Reload(ctx context.Context) error {
	data, err := os.ReadFile(ps.path)
	if err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	p, err := policy.Parse(ps.path, data)
	if err != nil {
		return err
	}
	ps.mu.Lock()
	ps.base = p
	ps.mu.Unlock()
	return ps.RefreshUsers(ctx)
}

// RefreshUsers merges the users enrolled in the store into the policy.
func (ps *PolicyState) RefreshUsers(ctx context.Context) error {
	users, err := ps.store.Users(ctx)
	if err != nil {
		return fmt.Errorf("read enrolled users: %w", err)
	}
	var extra []policy.User
	var errs []error
	for _, u := range users {
		pu := policy.User{Name: u.Name, Groups: u.Groups}
		for _, line := range u.Keys {
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				errs = append(errs, fmt.Errorf("enrolled user %q: key: %w", u.Name, err))
				continue
			}
			pu.Keys = append(pu.Keys, k)
		}
		extra = append(extra, pu)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.enrolled = extra
	ps.current.Store(ps.base.WithUsers(extra))
	return errors.Join(errs...)
}
