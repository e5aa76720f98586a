// Package livepolicy holds the policy in force while jitd runs: the last
// good parse of the policy file, with the users and hosts enrolled at run
// time merged in (a host in the store replaces one of the same name in the
// file). It is the I/O beside package policy, which reads no files: it reads the
// policy file and asks a UserSource (the audit store) for enrolled users.
package livepolicy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sshkey"
)

// UserSource lists the users and hosts enrolled outside the policy file;
// *audit.Store is one.
type UserSource interface {
	Users(ctx context.Context) ([]audit.User, error)
	// Hosts lists the enrolled hosts, removed ones included (they are
	// left out of the policy).
	Hosts(ctx context.Context) ([]audit.Host, error)
}

// SSOSource lists the identities of SSO logins; *audit.Store is one. A
// UserSource that is also an SSOSource has them merged in: each is a user
// with the groups its provider groups map to under the file's sso.groups
// (while they map to any), under
// a name neither the file nor an enrolment holds.
type SSOSource interface {
	SSOIdentities(ctx context.Context) ([]audit.SSOIdentity, error)
}

// Holder holds the policy in force. Readers never block; a bad file on
// reload leaves the last good policy in force.
type Holder struct {
	path  string
	users UserSource

	// mu serializes Reload and RefreshUsers, so that a slow refresh never
	// stores an older set of users over a newer one.
	mu      sync.Mutex
	base    *policy.Policy // the last good parse of the file
	current atomic.Pointer[policy.Policy]
}

// Load parses the policy file at path and merges the enrolled users. A bad
// file is an error naming file and line: the daemon does not start without a
// policy. An enrolled key that does not parse is left out, not fatal
// (RefreshUsers reports it every time it runs).
func Load(ctx context.Context, path string, users UserSource) (*Holder, error) {
	h := &Holder{path: path, users: users}
	if err := h.Reload(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// Current returns the policy in force.
func (h *Holder) Current() *policy.Policy { return h.current.Load() }

// Reload re-reads the policy file and the enrolled users. On error the last
// good policy stays in force.
func (h *Holder) Reload(ctx context.Context) error {
	_, err := h.ReloadChange(ctx)
	return err
}

// ReloadChange is Reload reporting how the policy in force changed. On a
// bad file it changes nothing and reports an empty Change with the error.
// When only some enrolled users' keys fail to parse, the reload succeeds:
// the new file is in force, those keys are left out and Change.Skipped
// says which they were.
func (h *Holder) ReloadChange(ctx context.Context) (Change, error) {
	data, err := os.ReadFile(h.path)
	if err != nil {
		return Change{}, fmt.Errorf("read policy: %w", err)
	}
	p, err := policy.Parse(h.path, data)
	if err != nil {
		return Change{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.current.Load()
	// At start (old == nil) a key shared with an enrolled user does not
	// keep the daemon down: logins with it are refused and the admin
	// lists and fixes it through the running daemon.
	skipped, err := h.mergeLocked(ctx, p, old != nil)
	if err != nil {
		return Change{}, err
	}
	var change Change
	if old != nil {
		change = Diff(old, h.current.Load())
	}
	for _, e := range skipped {
		change.Skipped = append(change.Skipped, e.Error())
	}
	return change, nil
}

// RefreshUsers merges the users and hosts enrolled in the UserSource into
// the policy from the file. If the source cannot be read the policy in force stays;
// enrolled keys that do not parse are left out and returned as errors (the
// rest is in force).
func (h *Holder) RefreshUsers(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	skipped, err := h.mergeLocked(ctx, h.base, false)
	return errors.Join(append([]error{err}, skipped...)...)
}

// mergeLocked puts base with the enrolled users merged in into force; it
// needs h.mu held. If the users cannot be read nothing changes, not even
// the base, so a failed reload is not applied later by a refresh. With
// checkKeys, a file key that an enrolled user of another name holds refuses
// base, likewise changing nothing. It returns the enrolled keys it left out
// for not parsing (base is then in force all the same) and what refused
// base.
func (h *Holder) mergeLocked(ctx context.Context, base *policy.Policy, checkKeys bool) (skipped []error, err error) {
	users, err := h.users.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("read enrolled users: %w", err)
	}
	hosts, err := h.users.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("read enrolled hosts: %w", err)
	}
	var ssoUsers []policy.User
	if src, ok := h.users.(SSOSource); ok {
		ids, err := src.SSOIdentities(ctx)
		if err != nil {
			return nil, fmt.Errorf("read sso identities: %w", err)
		}
		ssoUsers = liveSSO(ids, base.SSO, time.Now())
	}
	extra, skipped := enrolled(users)
	if checkKeys {
		if err := sharedWithEnrolled(h.path, base, extra); err != nil {
			return nil, err
		}
	}
	h.base = base
	h.current.Store(base.WithUsers(extra).WithSSOUsers(ssoUsers).WithHosts(enrolledHosts(hosts)))
	return skipped, nil
}

// enrolled turns stored users into policy users, leaving out (and
// reporting) keys that do not parse.
func enrolled(users []audit.User) ([]policy.User, []error) {
	var extra []policy.User
	var errs []error
	for _, u := range users {
		pu := policy.User{Name: u.Name, Groups: u.Groups}
		for _, line := range u.Keys {
			k, err := sshkey.ParseAuthorized(line)
			if err != nil {
				errs = append(errs, fmt.Errorf("enrolled user %q: key: %w", u.Name, err))
				continue
			}
			pu.Keys = append(pu.Keys, k)
		}
		extra = append(extra, pu)
	}
	return extra, errs
}

// liveSSO turns the SSO identities not expired at now whose provider
// groups map to any group under s into policy users with those groups. An
// identity expires with its latest token (grant): past that, nothing the
// provider said about the person is current, and a new login needs the
// provider again; a refused refresh empties the groups, which also leaves
// it out. The expiry is checked when the policy is merged (every login,
// refresh, enrolment and reload), and each token ends by itself.
func liveSSO(ids []audit.SSOIdentity, s policy.SSO, now time.Time) []policy.User {
	var out []policy.User
	for _, id := range ids {
		if !now.Before(id.ExpiresAt) {
			continue
		}
		if groups := s.MapGroups(id.Groups); len(groups) > 0 {
			out = append(out, policy.User{Name: id.Name, Groups: groups})
		}
	}
	return out
}

// enrolledHosts turns the stored hosts not removed into policy hosts. They
// pin no host key: an enrolled host presents the host certificate it was
// issued at join, which the bastion checks against the host CA.
func enrolledHosts(hosts []audit.Host) []policy.Host {
	var out []policy.Host
	for _, h := range hosts {
		if !h.RemovedAt.IsZero() {
			continue
		}
		out = append(out, policy.Host{Name: h.Name, Address: h.Address, Labels: h.Labels})
	}
	return out
}

// sharedWithEnrolled refuses a policy file one of whose users holds a key
// that an enrolled user of another name holds: a key belongs to one user.
func sharedWithEnrolled(path string, file *policy.Policy, extra []policy.User) error {
	owner := map[string]string{}
	for _, u := range extra {
		for _, k := range u.Keys {
			owner[string(k.Marshal())] = u.Name
		}
	}
	for _, name := range slices.Sorted(maps.Keys(file.Users)) {
		for i, k := range file.Users[name].Keys {
			if other, ok := owner[string(k.Marshal())]; ok && other != name {
				return fmt.Errorf("%s: user %q: keys[%d]: key %s is enrolled for user %q; a key belongs to one user: remove it from the file or run `jit admin user remove-key %s %s`",
					path, name, i, ssh.FingerprintSHA256(k), other, other, ssh.FingerprintSHA256(k))
			}
		}
	}
	return nil
}
