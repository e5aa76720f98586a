package grant

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ratelimit"
)

// Purposes of challenges: a nonce issued for one is refused for the other.
const (
	purposeLogin   = "login"
	purposeRenewal = "renewal"
)

// maxChallenges bounds the unanswered challenges of one purpose in the
// store, of all replicas together: each purpose has its own, so that key
// logins, which anyone may ask for, cannot keep hosts from renewing.
const maxChallenges = 10000

// MaxChallengesPerAddress bounds the unanswered challenges of one purpose
// from one client address, an IPv6 /64 counting as one: asking needs no
// login, so without it a few addresses could fill the table and keep
// everyone else from logging in. Throttle's rate limit comes first; this
// bounds what waits.
const MaxChallengesPerAddress = 32

// RenewalsPerHost bounds the unanswered renewal challenges of one host
// name: a further one replaces the oldest, so that asking for a host's
// challenges (which needs no login) neither grows the table nor keeps the
// host from its own, which it answers at once.
const RenewalsPerHost = 4

// nonces are the single-use challenges a caller signs to prove a key, kept
// in the store (so that a challenge issued by one replica is answered at
// another) as the SHA-256 of the nonce, never the nonce: each is bound to
// one subject and purpose, expires after ttl and is spent by its first
// answer whatever the outcome.
type nonces struct {
	store   *audit.Store
	ttl     time.Duration
	purpose string
	what    string // "logins", "renewals": for the busy message
	// perSubject bounds one subject's unanswered challenges (the oldest
	// go first); zero means no bound.
	perSubject int
}

func newNonces(store *audit.Store, ttl time.Duration, purpose, what string, perSubject int) *nonces {
	return &nonces{store: store, ttl: ttl, purpose: purpose, what: what, perSubject: perSubject}
}

func hashNonce(nonce string) string {
	sum := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(sum[:])
}

// issue returns a new nonce for subject, asked for from clientAddr, valid
// until the time returned. Too many unanswered nonces, of the address or in
// total, is KindUnavailable with CodeBusy.
func (n *nonces) issue(ctx context.Context, rand io.Reader, subject, clientAddr string, now time.Time) (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", time.Time{}, fmt.Errorf("draw nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(b)
	c := audit.Challenge{Hash: hashNonce(nonce), Purpose: n.purpose, Subject: subject, Addr: ratelimit.AddressKey(clientAddr), ExpiresAt: now.Add(n.ttl)}
	err := n.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertChallenge(c, now, audit.Limits{PerAddress: MaxChallengesPerAddress, Total: maxChallenges, PerSubject: n.perSubject})
	})
	switch {
	case errors.Is(err, audit.ErrAddressFull):
		return "", time.Time{}, newError(KindUnavailable, CodeBusy, "%d %s from this address are waiting for their answer already; answer or wait for one (at most %s)",
			MaxChallengesPerAddress, n.what, n.ttl)
	case errors.Is(err, audit.ErrFull):
		return "", time.Time{}, newError(KindUnavailable, CodeBusy, "too many %s in progress; retry shortly", n.what)
	case err != nil:
		return "", time.Time{}, unavailable(err)
	}
	return nonce, c.ExpiresAt, nil
}

// spend deletes nonce and reports whether it was issued for subject and
// this purpose and is still valid at now. Only a failing store is an
// error (KindUnavailable).
func (n *nonces) spend(ctx context.Context, nonce, subject string, now time.Time) (bool, error) {
	var ok bool
	err := n.store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		ok, err = n.take(tx, nonce, subject, now)
		return err
	})
	if err != nil {
		return false, unavailable(err)
	}
	return ok, nil
}

// take is spend inside tx, for a caller that records the outcome in the
// same transaction.
func (n *nonces) take(tx *audit.Tx, nonce, subject string, now time.Time) (bool, error) {
	c, err := tx.TakeChallenge(hashNonce(nonce))
	if errors.Is(err, audit.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return now.Before(c.ExpiresAt) && c.Subject == subject && c.Purpose == n.purpose, nil
}

// ReapLoginFlows deletes the login state that can no longer be used:
// expired challenges (key logins and host renewals) and dead SSO flows
// (expired, or device flows whose client stopped polling). It returns how
// many rows went; the daemon's housekeeping calls it. One replica doing
// it is enough, and several do no harm.
func (s *Service) ReapLoginFlows(ctx context.Context) (int, error) {
	now := s.now()
	var n int
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		c, err := tx.ReapChallenges(now)
		if err != nil {
			return err
		}
		f, err := tx.ReapSSOFlows(now)
		n = c + f
		return err
	})
	return n, err
}
