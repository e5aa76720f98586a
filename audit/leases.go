package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A lease names a piece of work that one process at a time may do (the
// housekeeping of several replicas, one ephemeral account's create or
// removal). The contract, on both engines:
//
//   - Expiry is measured by the database's clock alone (PostgreSQL's
//     clock_timestamp(), SQLite's julianday('now')), never by a caller's:
//     replicas' clocks differ. A row whose expires_at is not after the
//     database's now is free.
//   - AcquireLease by the holder of a lease that has not expired renews it
//     (expires_at becomes now + ttl); by anyone else it fails while the
//     lease has not expired, and takes it over once it has. So at any
//     instant of the database's clock at most one holder holds it.
//   - ReleaseLease by the holder frees it at once; by anyone else it does
//     nothing.
//
// A holder cannot read the database's clock, so it counts its lease by a
// monotonic rule: from the instant just before it sent the acquire, for
// ttl, on its own monotonic clock. The database stamped expires_at after
// that instant, so the holder's count runs out first (clock rate drift
// aside: parts per million over a lease's seconds).

// Lease is a named lease as stored: who holds it and until when, by the
// database's clock.
type Lease struct {
	Name    string
	Holder  string
	Expires time.Time
}

// dbNowSQL is the SQL of the database's clock in Unix nanoseconds, the
// unit of every time column. clock_timestamp() (not now(), which is the
// transaction's start) so that a batch that waited for the chain lock
// reads the time it runs at.
func (e engine) dbNowSQL() string {
	if e == enginePostgres {
		return "(CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) * 1000)"
	}
	return "(CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER) * 1000)"
}

// AcquireLease takes or renews lease name for holder for ttl by the
// database's clock, as the contract above says, and reports whether holder
// holds it now. ttl must be positive and under a day; holder non-empty.
func (t *Tx) AcquireLease(name, holder string, ttl time.Duration) (bool, error) {
	if err := t.check(); err != nil {
		return false, err
	}
	if name == "" || holder == "" {
		return false, fmt.Errorf("acquire lease %q for %q: name and holder are required", name, holder)
	}
	if ttl <= 0 || ttl > 24*time.Hour {
		return false, fmt.Errorf("acquire lease %q: ttl %s is not in (0, 24h]", name, ttl)
	}
	now := t.engine.dbNowSQL()
	var got string
	err := t.tx.QueryRow(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, `+now+` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= `+now+`
		RETURNING holder`, name, holder, int64(ttl)).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %q for %q: %w", name, holder, err)
	}
	return got == holder, nil
}

// ReleaseLease frees lease name if holder holds it; otherwise it does
// nothing (a lease taken over after expiry is the new holder's).
func (t *Tx) ReleaseLease(name, holder string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM leases WHERE name = ? AND holder = ?", name, holder); err != nil {
		return fmt.Errorf("release lease %q of %q: %w", name, holder, err)
	}
	return nil
}

// PruneLeases deletes the leases that have expired by the database's
// clock (a row that is gone is as free as an expired one: AcquireLease
// inserts it again), and returns how many went. Leases named after
// accounts and sessions would otherwise stay, one row each, forever.
func (t *Tx) PruneLeases() (int64, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	res, err := t.exec("DELETE FROM leases WHERE expires_at <= " + t.engine.dbNowSQL())
	if err != nil {
		return 0, fmt.Errorf("prune leases: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// AcquireLease is Tx.AcquireLease in a transaction of its own.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var held bool
	err := s.Do(ctx, func(tx *Tx) error {
		var err error
		held, err = tx.AcquireLease(name, holder, ttl)
		return err
	})
	return held, err
}

// ReleaseLease is Tx.ReleaseLease in a transaction of its own.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.Do(ctx, func(tx *Tx) error { return tx.ReleaseLease(name, holder) })
}

// Leases returns the leases that have not expired by the database's
// clock, by name.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT name, holder, expires_at FROM leases WHERE expires_at > "+s.engine.dbNowSQL()+" ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var exp int64
		if err := rows.Scan(&l.Name, &l.Holder, &exp); err != nil {
			return nil, fmt.Errorf("leases: %w", err)
		}
		l.Expires = fromNanos(exp)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return out, nil
}

// DBNow is the database's clock, the one leases and heartbeats are
// measured by.
func (s *Store) DBNow(ctx context.Context) (time.Time, error) {
	db, err := s.reader()
	if err != nil {
		return time.Time{}, err
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT "+s.engine.dbNowSQL()).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return fromNanos(n), nil
}
