package audit

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// flowsSchema is migration 12 (issue 12, replicas): the short-lived state
// of logins, kept here so that a login started at one replica is finished
// at another. Challenges (the nonces a key signs) and SSO flows are keyed
// by the SHA-256 of their secret, never the secret; an SSO flow's own
// secrets (state, nonce, PKCE verifier, device code) are sealed under the
// flow id, which only the client holds. live_until is when a flow stops
// counting: its expiry, or for a device flow whose client stopped polling
// earlier, then.
const flowsSchema = `
CREATE TABLE challenges (
	hash       TEXT PRIMARY KEY,
	purpose    TEXT NOT NULL,
	subject    TEXT NOT NULL,
	addr       TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX challenges_addr ON challenges(addr, expires_at);
CREATE INDEX challenges_expires ON challenges(expires_at);
CREATE TABLE sso_flows (
	hash          TEXT PRIMARY KEY,
	kind          TEXT NOT NULL,
	provider      TEXT NOT NULL,
	addr          TEXT NOT NULL,
	sealed        BLOB NOT NULL,
	poll_interval INTEGER NOT NULL DEFAULT 0,
	next_poll     INTEGER NOT NULL DEFAULT 0,
	live_until    INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sso_flows_addr ON sso_flows(addr, live_until);
CREATE INDEX sso_flows_live ON sso_flows(live_until);
`

// ErrFull means a bounded table holds as many live rows as it may: in
// total, or (ErrAddressFull, which wraps it) from one client address.
var ErrFull = errors.New("audit: too many in progress")

// ErrAddressFull is ErrFull for the rows of one client address.
var ErrAddressFull = fmt.Errorf("%w from one address", ErrFull)

// Limits bound the live rows of a table of flows: from one client address
// and in total; for challenges, both are counted among those of one
// purpose, and PerSubject keeps at most that many of one subject, the
// oldest going first. Zero means no bound.
type Limits struct {
	PerAddress, Total, PerSubject int
}

// Challenge is an unanswered challenge: Hash is the SHA-256 (hex) of its
// nonce, Purpose what it proves ("login", "renewal"), Subject whom it was
// issued to (a user or host name), Addr the client address key
// (ratelimit.AddressKey) that asked for it. Package grant also keeps its
// claims on an SSO refresh here (purpose "sso_refresh"): a row that one
// writer inserts first and that expires.
type Challenge struct {
	Hash, Purpose, Subject, Addr string
	ExpiresAt                    time.Time
}

// InsertChallenge stores c unless, at now, c.Addr already has
// lim.PerAddress live (unexpired) challenges of c.Purpose (ErrAddressFull)
// or the table lim.Total of them (ErrFull): each purpose has its own
// totals, so that challenges anyone may ask for (key logins) cannot crowd
// out another purpose's (host renewals). With lim.PerSubject, the
// subject's oldest challenges of c.Purpose go until it has room for c.
// The counts are taken inside the transaction, which every writer of the
// store, on each replica, takes in turn. The address's expired challenges
// are deleted first.
func (t *Tx) InsertChallenge(c Challenge, now time.Time, lim Limits) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	at, exp := cd.nanos("now", now), cd.nanos("expires_at", c.ExpiresAt)
	if cd.err != nil {
		return fmt.Errorf("insert challenge: %w", cd.err)
	}
	if _, err := t.exec("DELETE FROM challenges WHERE addr = ? AND expires_at <= ?", c.Addr, at); err != nil {
		return fmt.Errorf("insert challenge: drop expired: %w", err)
	}
	if lim.PerSubject > 0 {
		if _, err := t.exec(`DELETE FROM challenges WHERE purpose = ? AND subject = ? AND hash NOT IN
			(SELECT hash FROM challenges WHERE purpose = ? AND subject = ? AND expires_at > ? ORDER BY expires_at DESC, hash LIMIT ?)`,
			c.Purpose, c.Subject, c.Purpose, c.Subject, at, lim.PerSubject-1); err != nil {
			return fmt.Errorf("insert %s challenge: drop the oldest of %q: %w", c.Purpose, c.Subject, err)
		}
	}
	if err := t.bound("challenges", "expires_at", c.Addr, at, lim, " AND purpose = ?", c.Purpose); err != nil {
		return fmt.Errorf("insert %s challenge: %w", c.Purpose, err)
	}
	if _, err := t.exec("INSERT INTO challenges (hash, purpose, subject, addr, expires_at) VALUES (?, ?, ?, ?, ?)",
		c.Hash, c.Purpose, c.Subject, c.Addr, exp); err != nil {
		return fmt.Errorf("insert %s challenge: %w", c.Purpose, classify(err))
	}
	return nil
}

// bound returns ErrAddressFull or ErrFull when table's rows live at at
// (column liveCol later than at) reach lim, from addr or in total, among
// the rows that also match the condition also (with its argument alsoArgs).
func (t *Tx) bound(table, liveCol, addr string, at int64, lim Limits, also string, alsoArgs ...any) error {
	count := func(where string, args ...any) (int, error) {
		var n int
		// table, liveCol and also are this package's own text, never input.
		args = append(append([]any{at}, alsoArgs...), args...)
		err := t.tx.QueryRow("SELECT count(*) FROM "+table+" WHERE "+liveCol+" > ?"+also+where, args...).Scan(&n)
		return n, err
	}
	if lim.PerAddress > 0 {
		n, err := count(" AND addr = ?", addr)
		if err != nil {
			return fmt.Errorf("count %s of %q: %w", table, addr, err)
		}
		if n >= lim.PerAddress {
			return fmt.Errorf("%w: %d of %q live", ErrAddressFull, n, addr)
		}
	}
	if lim.Total > 0 {
		n, err := count("")
		if err != nil {
			return fmt.Errorf("count %s: %w", table, err)
		}
		if n >= lim.Total {
			return fmt.Errorf("%w: %d live", ErrFull, n)
		}
	}
	return nil
}

// TakeChallenge deletes the challenge of hash and returns it, whether or
// not it has expired: a challenge is spent by its first answer, whatever
// the outcome. An unknown (or already spent) hash is ErrNotFound.
func (t *Tx) TakeChallenge(hash string) (Challenge, error) {
	if err := t.check(); err != nil {
		return Challenge{}, err
	}
	c := Challenge{Hash: hash}
	var exp int64
	err := t.tx.QueryRow("DELETE FROM challenges WHERE hash = ? RETURNING purpose, subject, addr, expires_at", hash).
		Scan(&c.Purpose, &c.Subject, &c.Addr, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Challenge{}, fmt.Errorf("take challenge: %w", ErrNotFound)
	}
	if err != nil {
		return Challenge{}, fmt.Errorf("take challenge: %w", err)
	}
	c.ExpiresAt = fromNanos(exp)
	return c, nil
}

// ReapChallenges deletes the challenges expired at now and returns how
// many.
func (t *Tx) ReapChallenges(now time.Time) (int, error) {
	return t.reap("challenges", "expires_at", now)
}

func (t *Tx) reap(table, liveCol string, now time.Time) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	var cd codec
	at := cd.nanos("now", now)
	if cd.err != nil {
		return 0, fmt.Errorf("reap %s: %w", table, cd.err)
	}
	res, err := t.exec("DELETE FROM "+table+" WHERE "+liveCol+" <= ?", at)
	if err != nil {
		return 0, fmt.Errorf("reap %s: %w", table, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
