package grant

import (
	"context"
	"errors"
	"fmt"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// CodeAccountNameTaken refuses an ephemeral request when no free login
// could be found for it on the host (every attempt was handed out before).
const CodeAccountNameTaken = "account_name_taken"

// maxLoginAttempts bounds the names tried for one ephemeral request: with
// 20 bits of suffix per user and host, eight taken in a row means the
// store is full of that user's names, not bad luck.
const maxLoginAttempts = 8

// ephemeralLogin chooses the login of an ephemeral request at request
// time. It must be chosen then, not when the account is created: it is
// part of the certificate's principal LOGIN@HOST, which is signed at
// issuance. The store keeps every ephemeral login ever issued per host, so
// a name taken before (even long removed) is skipped, and planAccount's
// unique constraint catches a race.
func (s *Service) ephemeralLogin(ctx context.Context, user, host, id string) (string, *Error) {
	for attempt := range maxLoginAttempts {
		login := policy.EphemeralLogin(user, id, attempt)
		taken, err := s.cfg.Store.AccountLoginTaken(ctx, host, login)
		if err != nil {
			return "", unavailable(err)
		}
		if !taken {
			return login, nil
		}
	}
	return "", newError(KindConflict, CodeAccountNameTaken, "no free ephemeral login for %s on %s after %d attempts; retry the request", user, host, maxLoginAttempts)
}

// planAccount records the account of ephemeral request r in the
// transaction that records the request, with the role's account rule in
// force now: a later role change applies to later requests only.
func planAccount(tx *audit.Tx, r audit.Request, a *policy.AccountRule) error {
	if a == nil {
		return nil
	}
	err := tx.InsertAccount(audit.Account{
		RequestID: r.ID, Host: r.Host, Login: r.Login, User: r.User,
		Groups: a.Groups, Sudo: a.SudoRules(), Shell: a.Shell, State: audit.AccountPlanned, PlannedAt: r.CreatedAt,
	})
	if errors.Is(err, audit.ErrConflict) {
		// Not audit.ErrConflict: that would make the door retry with
		// the same name.
		return newError(KindConflict, CodeAccountNameTaken, "ephemeral login %s on %s was just handed out to another request; retry the request", r.Login, r.Host)
	}
	if err != nil {
		return fmt.Errorf("plan account %s on %s: %w", r.Login, r.Host, err)
	}
	return nil
}

// isEphemeral reports whether request id has an ephemeral account.
func (s *Service) isEphemeral(ctx context.Context, id string) (bool, error) {
	_, err := s.cfg.Store.Account(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, audit.ErrNotFound):
		return false, nil
	}
	return false, unavailable(err)
}
