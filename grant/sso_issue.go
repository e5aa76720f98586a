package grant

import (
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
		if conflict = l.checkName(tx, pol.Users, id); conflict != nil {
			return errConflictRefused
		}
		if oldHash != "" {
			if err := tx.DeleteToken(oldHash); err != nil {
				// A second refresh with the same token lost the race.
				conflict = &sso.Error{Code: sso.CodeRefreshFailed, Reason: "already_refreshed", Message: "this token was refreshed already"}
				return errConflictRefused
			}
			if err := tx.DeleteSSOLogin(oldHash); err != nil {
				return err
			}
		}
		if err := tx.InsertToken(audit.Token{Hash: hash, User: id.User, IssuedAt: now, ExpiresAt: expires}); err != nil {
			return err
		}
		// The provider's groups are stored, not the mapped ones: livepolicy
		// maps them through the policy in force, so a reload that changes
		// sso.groups changes what SSO users may do at once.
		if err := tx.PutSSOIdentity(audit.SSOIdentity{Name: id.User, Provider: id.Provider, Subject: id.Subject, Groups: id.Groups, ExpiresAt: expires, UpdatedAt: now}); err != nil {
			return err
		}
		if err := tx.InsertSSOLogin(audit.SSOLogin{TokenHash: hash, Name: id.User, Provider: id.Provider, Subject: id.Subject, RefreshSealed: sealed, ExpiresAt: expires}); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "login", Code: "ok", Actor: id.User, User: id.User, ClientAddr: clientAddr,
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
		return Token{}, &Error{Kind: KindInternal, Code: CodeRefreshFailed, Message: "login recorded, but the policy in force could not be refreshed with it", Err: err}
	}
	pol = l.cfg.Policy()
	return Token{Token: token, User: id.User, ExpiresAt: expires, Admin: pol.IsAdmin(id.User), Auditor: pol.IsAuditor(id.User)}, nil
}

var errConflictRefused = errors.New("sso identity refused")

// checkName refuses id when its name is a local user's or bound to
// another provider subject.
func (l *Logins) checkName(tx *audit.Tx, users map[string]policy.User, id sso.Identity) *sso.Error {
	known, err := tx.SSOIdentity(id.User)
	switch {
	case errors.Is(err, audit.ErrNotFound):
		if _, local := users[id.User]; local {
			return &sso.Error{Code: sso.CodeTokenInvalid, Reason: reasonLocalUser,
				Message: fmt.Sprintf("user %q is a local user of the policy or a key enrolment; an sso login cannot take the name", id.User)}
		}
		return nil
	case err != nil:
		return &sso.Error{Code: sso.CodeProviderFailed, Reason: "store", Message: "could not read sso identities", Err: err}
	case known.Provider != id.Provider || known.Subject != id.Subject:
		return &sso.Error{Code: sso.CodeTokenInvalid, Reason: reasonIdentityConflict,
			Message: fmt.Sprintf("user %q belongs to subject %q at provider %q, not %q at %q", id.User,
				audit.BoundText(known.Subject, maxAuditText), known.Provider, audit.BoundText(id.Subject, maxAuditText), id.Provider)}
	}
	return nil
}
