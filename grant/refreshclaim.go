package grant

import (
	"context"
	"errors"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sso"
)

// purposeRefresh marks a claim on the refresh of one SSO login, kept with
// the challenges: a row that expires, that one writer of the store (of all
// replicas) inserts first and that the others then find.
const purposeRefresh = "sso_refresh"

// refreshClaimTTL bounds a claim whose replica died mid-refresh: the
// provider's answer (15 s at most) and the writes after it fit well in it.
const refreshClaimTTL = time.Minute

// claimRefresh claims, in the store, the refresh of the SSO login of the
// token with hash before its refresh token goes to the provider, and
// returns the release. Refreshes are serialised in the process
// (lockRefresh); this serialises them across replicas: a provider that
// rotates refresh tokens and detects reuse (Okta, Keycloak, Auth0) would
// otherwise see the same refresh token twice at once, revoke the chain and
// so end the person's SSO roles. A refresh in progress elsewhere is
// CodeBusy (the token is kept: the client tries again and finds it
// refreshed).
func (l *Logins) claimRefresh(ctx context.Context, hash string) (release func(), err error) {
	key := purposeRefresh + ":" + hash
	now := l.now()
	c := audit.Challenge{Hash: key, Purpose: purposeRefresh, Subject: hash, Addr: key, ExpiresAt: now.Add(refreshClaimTTL)}
	err = l.cfg.Store.Do(ctx, func(tx *audit.Tx) error { return tx.InsertChallenge(c, now, audit.Limits{}) })
	switch {
	case errors.Is(err, audit.ErrConflict):
		return nil, &sso.Error{Code: sso.CodeBusy, Reason: "refresh_in_progress", Message: "a refresh of this token is in progress already; try again shortly"}
	case err != nil:
		return nil, unavailable(err)
	}
	return func() {
		// The claim goes whatever the client does meanwhile; one left
		// behind expires.
		_ = l.cfg.Store.Do(context.WithoutCancel(ctx), func(tx *audit.Tx) error {
			_, err := tx.TakeChallenge(key)
			return err
		})
	}, nil
}
