package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Idempotency key states: a key is in flight from the transaction that
// records its request until its certificate (if any) is stored, then done.
const (
	IdempotencyInFlight = "in_flight"
	IdempotencyDone     = "done"
)

// IdempotencyKey is the record of the first request a user made with one
// Idempotency-Key: what the body hashed to and what came of it.
type IdempotencyKey struct {
	User      string
	Key       string
	BodyHash  string
	RequestID string
	State     string // IdempotencyInFlight or IdempotencyDone
	// Certificate is the signed certificate in authorized_keys form, once
	// stored; empty for a request that was not issued at once.
	Certificate string
	CreatedAt   time.Time
}

const idemColumns = "user, key, body_hash, request_id, state, certificate, created_at"

func scanIdempotencyKey(row *sql.Row) (IdempotencyKey, error) {
	var k IdempotencyKey
	var created int64
	if err := row.Scan(&k.User, &k.Key, &k.BodyHash, &k.RequestID, &k.State, &k.Certificate, &created); err != nil {
		return IdempotencyKey{}, err
	}
	k.CreatedAt = fromNanos(created)
	return k, nil
}

// ClaimIdempotencyKey records k (in flight) unless user and key already
// have a record made after notBefore; that record is then returned with
// claimed false. A record made at or before notBefore is out of its window
// and is replaced. Run it in the transaction that records k's request, so
// that of two concurrent requests with one key exactly one makes a request.
func (t *Tx) ClaimIdempotencyKey(k IdempotencyKey, notBefore time.Time) (existing IdempotencyKey, claimed bool, err error) {
	if err := t.check(); err != nil {
		return IdempotencyKey{}, false, err
	}
	var cd codec
	created, cutoff := cd.nanos("created_at", k.CreatedAt), cd.nanos("not_before", notBefore)
	if cd.err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key: %w", cd.err)
	}
	row := t.tx.QueryRow("SELECT "+idemColumns+" FROM idempotency_keys WHERE user = ? AND key = ? AND created_at > ?", k.User, k.Key, cutoff)
	switch existing, err := scanIdempotencyKey(row); {
	case err == nil:
		return existing, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key of %q: %w", k.User, err)
	}
	if _, err := t.exec(`INSERT INTO idempotency_keys (`+idemColumns+`) VALUES (?, ?, ?, ?, ?, '', ?)
		ON CONFLICT (user, key) DO UPDATE SET body_hash = excluded.body_hash, request_id = excluded.request_id,
		state = excluded.state, certificate = '', created_at = excluded.created_at`,
		k.User, k.Key, k.BodyHash, k.RequestID, IdempotencyInFlight, created); err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key of %q: %w", k.User, classify(err))
	}
	return IdempotencyKey{}, true, nil
}

// CompleteIdempotencyKey marks the key of user done, with the certificate
// its request was issued (empty for none). An unknown key is ErrNotFound.
func (t *Tx) CompleteIdempotencyKey(user, key, certificate string) error {
	if err := t.check(); err != nil {
		return err
	}
	res, err := t.exec("UPDATE idempotency_keys SET state = ?, certificate = ? WHERE user = ? AND key = ?",
		IdempotencyDone, certificate, user, key)
	if err != nil {
		return fmt.Errorf("complete idempotency key of %q: %w", user, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return fmt.Errorf("complete idempotency key of %q: %w", user, ErrNotFound)
}

// ReleaseIdempotencyKey forgets the key of user if it is still that of
// requestID, for a request that failed before anything was issued, so that
// a retry may try again.
func (t *Tx) ReleaseIdempotencyKey(user, key, requestID string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM idempotency_keys WHERE user = ? AND key = ? AND request_id = ?", user, key, requestID); err != nil {
		return fmt.Errorf("release idempotency key of %q: %w", user, err)
	}
	return nil
}

// ReapIdempotencyKeys deletes every key made at or before notBefore (out of
// its window) and returns how many.
func (t *Tx) ReapIdempotencyKeys(notBefore time.Time) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	var cd codec
	cutoff := cd.nanos("not_before", notBefore)
	if cd.err != nil {
		return 0, fmt.Errorf("reap idempotency keys: %w", cd.err)
	}
	res, err := t.exec("DELETE FROM idempotency_keys WHERE created_at <= ?", cutoff)
	if err != nil {
		return 0, fmt.Errorf("reap idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// IdempotencyKey returns the record of key of user made after notBefore,
// or ErrNotFound.
func (s *Store) IdempotencyKey(ctx context.Context, user, key string, notBefore time.Time) (IdempotencyKey, error) {
	db, err := s.reader()
	if err != nil {
		return IdempotencyKey{}, err
	}
	var cd codec
	cutoff := cd.nanos("not_before", notBefore)
	if cd.err != nil {
		return IdempotencyKey{}, fmt.Errorf("idempotency key: %w", cd.err)
	}
	k, err := scanIdempotencyKey(db.QueryRowContext(ctx, "SELECT "+idemColumns+" FROM idempotency_keys WHERE user = ? AND key = ? AND created_at > ?", user, key, cutoff))
	if errors.Is(err, sql.ErrNoRows) {
		return IdempotencyKey{}, fmt.Errorf("idempotency key of %q: %w", user, ErrNotFound)
	}
	if err != nil {
		return IdempotencyKey{}, fmt.Errorf("idempotency key of %q: %w", user, err)
	}
	return k, nil
}
