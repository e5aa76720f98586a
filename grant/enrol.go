package grant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sshkey"
)

// Enrolment is a user to enrol: the name, the groups (none for a user whose
// groups the policy file sets) and public keys in authorized_keys form.
type Enrolment struct {
	Name   string
	Groups []string
	Keys   []string
	// Via says how the enrolment arrived when not through the API ("jitd
	// user add"); it is recorded in the event.
	Via string
}

// Enrol checks e and enrols the user, or replaces an enrolled user of that
// name (a key rotation), and records admin.user.add in the same transaction.
// The name and groups must be valid names, at least one key is needed and
// each must be a key ca accepts for certificates; a user of the policy file
// may be enrolled with more keys but not with other groups. It returns the
// user as stored, keys in canonical form. A key that another user holds
// (enrolled, or in the policy file) is KindConflict with CodeKeyInUse,
// checked in the transaction that writes the user so that two racing
// enrolments of one key give one success. Refusals are KindInvalid or
// KindConflict and are not recorded: nothing changed.
func (a *Admin) Enrol(ctx context.Context, caller Caller, e Enrolment) (audit.User, error) {
	keys, err := checkEnrolment(e)
	if err != nil {
		return audit.User{}, err
	}
	if err := a.checkGroupsOwner(ctx, e); err != nil {
		return audit.User{}, err
	}
	now := a.now()
	u := audit.User{Name: e.Name, Groups: e.Groups, Keys: keys, CreatedAt: now, CreatedBy: caller.User}
	data := map[string]string{"groups": strings.Join(e.Groups, ","), "keys": strconv.Itoa(len(keys))}
	if e.Via != "" {
		data["via"] = e.Via
	}
	parsed, err := parseKeys(keys)
	if err != nil {
		return audit.User{}, err
	}
	err = a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		// The policy in force as the write commits (reloads swap it
		// atomically), against the enrolled keys this transaction sees.
		if err := checkKeysFree(tx, a.cfg.Policy(), e.Name, parsed); err != nil {
			return err
		}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "admin.user.add", Code: "ok", Actor: caller.User, User: e.Name,
			ClientAddr: caller.ClientAddr, Data: data})
		return err
	})
	if err != nil {
		return audit.User{}, domainOrUnavailable(err)
	}
	return u, a.refresh(ctx)
}

// checkEnrolment validates names and keys and returns the keys in canonical
// authorized_keys form, without comments.
func checkEnrolment(e Enrolment) ([]string, error) {
	if err := policy.ValidName("user", e.Name); err != nil {
		return nil, &Error{Kind: KindInvalid, Code: CodeInvalidUser, Message: err.Error()}
	}
	if len(e.Keys) == 0 {
		return nil, newError(KindInvalid, CodeInvalidPublicKey, "at least one key is required")
	}
	for _, g := range e.Groups {
		if err := policy.ValidName("group", g); err != nil {
			return nil, &Error{Kind: KindInvalid, Code: CodeInvalidGroup, Message: err.Error()}
		}
	}
	keys := make([]string, 0, len(e.Keys))
	for i, k := range e.Keys {
		key, err := sshkey.ParseAuthorized(k)
		if err != nil {
			return nil, newError(KindInvalid, CodeInvalidPublicKey, "keys[%d]: %v", i, err)
		}
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	}
	return keys, nil
}

// parseKeys parses the canonical key lines checkEnrolment returned.
func parseKeys(lines []string) ([]ssh.PublicKey, error) {
	out := make([]ssh.PublicKey, 0, len(lines))
	for i, line := range lines {
		k, err := sshkey.ParseAuthorized(line)
		if err != nil {
			return nil, newError(KindInvalid, CodeInvalidPublicKey, "keys[%d]: %v", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// checkGroupsOwner refuses groups for a user of the policy file that differ
// from the file's: the file is where that user's groups are managed. A
// name only an SSO identity holds is free: the enrolment wins over it.
func (a *Admin) checkGroupsOwner(ctx context.Context, e Enrolment) error {
	u, known := a.cfg.Policy().User(e.Name)
	if !known || u.SSO || len(e.Groups) == 0 || slices.Equal(u.Groups, e.Groups) {
		return nil
	}
	enrolled, err := a.enrolled(ctx, e.Name)
	if err != nil {
		return unavailable(err)
	}
	if enrolled {
		return nil
	}
	return newError(KindConflict, CodeGroupsInPolicy, "the groups of %q are set in the policy file; enrol keys without --group", e.Name)
}

// enrolled reports whether name was enrolled (through the API or jitd user
// add) rather than written in the policy file.
func (a *Admin) enrolled(ctx context.Context, name string) (bool, error) {
	users, err := a.cfg.Store.Users(ctx)
	if err != nil {
		return false, fmt.Errorf("list enrolled users: %w", err)
	}
	return slices.ContainsFunc(users, func(u audit.User) bool { return u.Name == name }), nil
}

// Unenrol removes an enrolled user and records admin.user.remove in the same
// transaction. Users of the policy file are removed there: for them, and
// for names never enrolled, it is KindNotFound.
func (a *Admin) Unenrol(ctx context.Context, caller Caller, name string) error {
	now := a.now()
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.DeleteUser(name); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "admin.user.remove", Code: "ok", Actor: caller.User, User: name, ClientAddr: caller.ClientAddr})
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindNotFound, CodeNotFound, "no enrolled user %q (users in the policy file are removed there)", name)
	}
	if err != nil {
		return unavailable(err)
	}
	return a.refresh(ctx)
}
