package grant

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sso"
)

// issueSSO maps id's groups through the policy, checks the name against
// the identities known and the policy's own users, and issues a token,
// recording login (code ok, with the method) in the transaction that stores
// the token, the identity and the SSO login. With oldHash (a refresh) the
// old token is revoked in the same transaction; a refusal then revokes it
// too.
//
// A name the policy file (or a key enrolment) holds is never taken by an
// SSO login (reason local_user): the provider's user claim must not give
// anyone the roles of a local user of that name. A name is bound to the
// provider and subject of its first SSO login; another subject asking for
// it is refused (reason identity_conflict).
func (l *Logins) issueSSO(ctx context.Context, id sso.Identity, method, clientAddr, oldHash string) (Token, error) {
	now := l.now()
	pol := l.cfg.Policy()
	groups := pol.SSO.MapGroups(id.Groups)
	refuse := func(code, reason, format string, args ...any) (Token, error) {
		err := &sso.Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
		return Token{}, l.refuseSSO(ctx, err, method, id.Provider, id.User, clientAddr, oldHash)
	}
	if len(groups) == 0 {
		return refuse(CodeSSONoRoles, "", "provider groups %q map to no jitssh group (policy sso.groups)", boundedList(id.Groups))
	}
	ttl := l.ssoTTL(id, now)
	if ttl <= 0 {
		return refuse(sso.CodeTokenInvalid, sso.ReasonExpired, "the id token expires at %s, leaving no token life", id.Expiry.UTC().Format(time.RFC3339))
	}
	token, err := l.newBearer()
	if err != nil {
		return Token{}, err
	}
	hash := hashToken(token)
	sealed, err := sealRefresh(l.cfg.Rand, token, hash, id.RefreshToken)
	if err != nil {
		return Token{}, fmt.Errorf("seal refresh token: %w", err)
	}
	expires := now.Add(ttl)
	var conflict *sso.Error
	err = l.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		if conflict, err = checkName(tx, pol, id); err != nil || conflict != nil {
			return cmp.Or(err, errConflictRefused)
		}
		if conflict, err = deleteOldLocked(tx, oldHash); err != nil || conflict != nil {
			return cmp.Or(err, errConflictRefused)
		}
		if err := tx.InsertToken(audit.Token{Hash: hash, User: id.User, IssuedAt: now, ExpiresAt: expires}); err != nil {
			return err
		}
		// The provider's groups are stored, not the mapped ones: livepolicy
		// maps them through the policy in force, so a reload that changes
		// sso.groups changes what SSO users may do at once.
		// The identity lives as long as its latest token (livepolicy
		// leaves it out after that).
		idExpires := expires
		if known, err := tx.SSOIdentity(id.User); err == nil && known.ExpiresAt.After(idExpires) {
			idExpires = known.ExpiresAt
		}
		if err := tx.PutSSOIdentity(audit.SSOIdentity{Name: id.User, Provider: id.Provider, Subject: id.Subject, Groups: id.Groups, ExpiresAt: idExpires, UpdatedAt: now}); err != nil {
			return err
		}
		if err := tx.InsertSSOLogin(audit.SSOLogin{TokenHash: hash, Name: id.User, Provider: id.Provider, Subject: id.Subject, RefreshSealed: sealed, ExpiresAt: expires}); err != nil {
			return err
		}
		_, err = tx.Append(audit.Event{Time: now, Type: "login", Code: "ok", Actor: id.User, User: id.User, ClientAddr: clientAddr,
			Data: map[string]string{"method": method, "provider": id.Provider, "subject": audit.BoundText(id.Subject, maxAuditText),
				"groups": boundedList(groups), "expires_at": expires.Format(time.RFC3339)}})
		return err
	})
	if errors.Is(err, errConflictRefused) {
		return Token{}, l.refuseSSO(ctx, conflict, method, id.Provider, id.User, clientAddr, oldHash)
	}
	if err != nil {
		return Token{}, unavailable(err)
	}
	if oldHash != "" {
		l.forget(oldHash)
	}
	if err := l.refreshPolicy(ctx); err != nil {
		// The login is committed (and with a refresh the old token is
		// gone): the token must reach the person. The daemon's periodic
		// refresh merges the identity later.
		l.cfg.Logger.Warn("sso login recorded, but the policy in force could not be refreshed with it", "user", id.User, "err", err)
	}
	pol = l.cfg.Policy()
	return Token{Token: token, User: id.User, ExpiresAt: expires, Admin: pol.IsAdmin(id.User), Auditor: pol.IsAuditor(id.User)}, nil
}

var errConflictRefused = errors.New("sso identity refused")

// checkName refuses id (at every login and refresh) when its name is a
// local user's (the file or a key enrolment), bound to another provider
// subject, or when its subject already holds another name (a rename at
// the provider: one person must not hold two names, which would let them
// approve their own requests). The error is the store's.
func checkName(tx *audit.Tx, pol *policy.Policy, id sso.Identity) (*sso.Error, error) {
	if pol.LocalUser(id.User) {
		return &sso.Error{Code: sso.CodeTokenInvalid, Reason: reasonLocalUser,
			Message: fmt.Sprintf("user %q is a local user of the policy or a key enrolment; an sso login cannot take the name", id.User)}, nil
	}
	known, err := tx.SSOIdentity(id.User)
	switch {
	case errors.Is(err, audit.ErrNotFound):
	case err != nil:
		return nil, err
	case known.Provider != id.Provider || known.Subject != id.Subject:
		return &sso.Error{Code: sso.CodeTokenInvalid, Reason: reasonIdentityConflict,
			Message: fmt.Sprintf("user %q belongs to subject %q at provider %q, not %q at %q", id.User,
				audit.BoundText(known.Subject, maxAuditText), known.Provider, audit.BoundText(id.Subject, maxAuditText), id.Provider)}, nil
	}
	bySub, err := tx.SSOIdentityBySubject(id.Provider, id.Subject)
	switch {
	case errors.Is(err, audit.ErrNotFound):
	case err != nil:
		return nil, err
	case bySub.Name != id.User:
		return &sso.Error{Code: sso.CodeTokenInvalid, Reason: reasonIdentityConflict,
			Message: fmt.Sprintf("subject %q at provider %q is bound to user %q, not %q; an admin renames with `jit admin sso forget %s`", audit.BoundText(id.Subject, maxAuditText),
				id.Provider, bySub.Name, id.User, bySub.Name)}, nil
	}
	return nil, nil
}

// revokeTakenOver revokes the SSO login's token hash whose name user has
// become a local user's, recording it once (a later use of the token
// finds none). A store failure leaves the token, which Authenticate keeps
// refusing.
func (l *Logins) revokeTakenOver(ctx context.Context, hash, user string, now time.Time) {
	defer l.forget(hash)
	_ = l.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.DeleteToken(hash); err != nil {
			return err // ErrNotFound: revoked and recorded already
		}
		login, err := tx.SSOLogin(hash)
		if err != nil {
			return err
		}
		if err := tx.DeleteSSOLogin(hash); err != nil {
			return err
		}
		_, err = tx.Append(audit.Event{Time: now, Type: "login.revoked", Code: sso.CodeTokenInvalid, User: audit.BoundText(user, maxAuditText),
			Message: fmt.Sprintf("sso login of %q revoked: the name is now a local user of the policy or a key enrolment", audit.BoundText(user, maxAuditText)),
			Data:    map[string]string{"method": MethodSSO, "reason": reasonLocalUser, "provider": login.Provider}})
		return err
	})
}

// deleteOldLocked deletes the token and SSO login a refresh replaces (none
// without oldHash), inside tx.
func deleteOldLocked(tx *audit.Tx, oldHash string) (*sso.Error, error) {
	if oldHash == "" {
		return nil, nil
	}
	if err := tx.DeleteToken(oldHash); errors.Is(err, audit.ErrNotFound) {
		// Another refresh with the same token won (refreshes are
		// serialised per token here; this is another replica's): the
		// person is logged in there.
		return &sso.Error{Code: sso.CodeRefreshFailed, Reason: reasonAlreadyRefreshed, Message: "this token was refreshed already; use the new one"}, nil
	} else if err != nil {
		return nil, err
	}
	return nil, tx.DeleteSSOLogin(oldHash)
}
