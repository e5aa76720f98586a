package grant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// Codes of the one-owner rule for keys: the key is what tells a requester
// from an approver, so one key identifies one user.
const (
	// CodeKeyInUse refuses an enrolment of a key that belongs to another
	// user.
	CodeKeyInUse = "key_in_use"
	// CodeKeyShared refuses a login with a key that more than one user
	// holds (a store written before the rule, or a racing enrolment).
	CodeKeyShared = "key_shared"
)

// KeyDuplicate is one public key held by more than one user.
type KeyDuplicate struct {
	Fingerprint string   // SHA256:... of the key
	Users       []string // sorted
}

// keyOwners returns the sorted names of the users of pol holding key.
func keyOwners(pol *policy.Policy, key ssh.PublicKey) []string {
	want := key.Marshal()
	var out []string
	for name, u := range pol.Users {
		if slices.ContainsFunc(u.Keys, func(k ssh.PublicKey) bool { return k != nil && bytes.Equal(k.Marshal(), want) }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// sharedKeyError is the login refusal for a key that several users hold:
// it names them and what an admin runs to end the ambiguity.
func sharedKeyError(key ssh.PublicKey, owners []string) *Error {
	fp := ssh.FingerprintSHA256(key)
	return newError(KindUnauthenticated, CodeKeyShared,
		"key %s is enrolled for several users (%s); a key belongs to one user, so it logs nobody in until an admin runs `jit admin user dups` and `jit admin user remove-key NAME %s` for every user it does not belong to",
		fp, strings.Join(owners, ", "), fp)
}

// checkKeysFree refuses keys that a user other than name holds: one enrolled
// in the store as tx sees it (so two racing enrolments of one key cannot
// both pass, the writer runs them one after the other) or one of the policy
// file, which pol has merged in.
func checkKeysFree(tx *audit.Tx, pol *policy.Policy, name string, keys []ssh.PublicKey) error {
	users, err := tx.Users()
	if err != nil {
		return err
	}
	for _, key := range keys {
		want := key.Marshal()
		for _, u := range users {
			if u.Name == name {
				continue
			}
			for _, line := range u.Keys {
				k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
				if err == nil && bytes.Equal(k.Marshal(), want) {
					return keyInUse(key, u.Name)
				}
			}
		}
		for _, owner := range keyOwners(pol, key) {
			if owner != name {
				return keyInUse(key, owner)
			}
		}
	}
	return nil
}

func keyInUse(key ssh.PublicKey, owner string) *Error {
	return newError(KindConflict, CodeKeyInUse, "key %s already belongs to user %q; a key belongs to one user", ssh.FingerprintSHA256(key), owner)
}

// DuplicateKeys lists every key that more than one user of the policy in
// force (the file's users and the enrolled ones) holds, by fingerprint.
func (a *Admin) DuplicateKeys() []KeyDuplicate {
	pol := a.cfg.Policy()
	owners := map[string][]string{}
	for name, u := range pol.Users {
		for _, k := range u.Keys {
			if k == nil {
				continue
			}
			fp := ssh.FingerprintSHA256(k)
			if !slices.Contains(owners[fp], name) {
				owners[fp] = append(owners[fp], name)
			}
		}
	}
	var out []KeyDuplicate
	for _, fp := range slices.Sorted(maps.Keys(owners)) {
		if users := owners[fp]; len(users) > 1 {
			slices.Sort(users)
			out = append(out, KeyDuplicate{Fingerprint: fp, Users: users})
		}
	}
	return out
}

// RemoveKey removes the key with fingerprint from the enrolled user name and
// records admin.user.remove_key in the same transaction; a user left without
// keys is unenrolled (the event says so). Keys of the policy file are
// removed there: a key or user not enrolled is KindNotFound.
func (a *Admin) RemoveKey(ctx context.Context, caller Caller, name, fingerprint string) error {
	now := a.now()
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		users, err := tx.Users()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(users, func(u audit.User) bool { return u.Name == name })
		if i < 0 {
			return newError(KindNotFound, CodeNotFound, "no enrolled user %q (keys in the policy file are removed there)", name)
		}
		u := users[i]
		kept := slices.DeleteFunc(slices.Clone(u.Keys), func(line string) bool {
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			return err == nil && ssh.FingerprintSHA256(k) == fingerprint
		})
		if len(kept) == len(u.Keys) {
			return newError(KindNotFound, CodeNotFound, "enrolled user %q has no key %s (keys in the policy file are removed there)", name, fingerprint)
		}
		data := map[string]string{"key_fingerprint": fingerprint, "keys_left": fmt.Sprint(len(kept))}
		if len(kept) == 0 {
			err = tx.DeleteUser(name)
			data["unenrolled"] = "true"
		} else {
			u.Keys = kept
			err = tx.PutUser(u)
		}
		if err != nil {
			return err
		}
		_, err = tx.Append(audit.Event{Time: now, Type: "admin.user.remove_key", Code: "ok", Actor: caller.User, User: name,
			ClientAddr: caller.ClientAddr, Data: data})
		return err
	})
	if err != nil {
		return domainOrUnavailable(err)
	}
	return a.refresh(ctx)
}

// domainOrUnavailable passes a refusal decided inside a transaction through
// and reports any other failure as the store being unavailable.
func domainOrUnavailable(err error) error {
	var ge *Error
	if errors.As(err, &ge) {
		return ge
	}
	return unavailable(err)
}
