package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Kinds of SSO flows.
const (
	SSOFlowCode   = "code"   // authorization code with PKCE (browser, console)
	SSOFlowDevice = "device" // device authorization (RFC 8628)
)

// SSOFlow is an SSO login in progress. Hash is the SHA-256 (hex) of the
// flow id, which only the client holds; Sealed holds the flow's secrets
// sealed under the flow id (package sso), so the row alone cannot finish
// the login. Interval and NextPoll are a device flow's: the seconds the
// provider asks between polls and the first time it may be polled again.
// LiveUntil is when the flow stops counting (ExpiresAt, or earlier for a
// device flow whose client stopped polling).
type SSOFlow struct {
	Hash, Kind, Provider, Addr string
	Sealed                     []byte
	Interval                   int
	NextPoll, LiveUntil        time.Time
	ExpiresAt                  time.Time
}

const ssoFlowColumns = "hash, kind, provider, addr, sealed, poll_interval, next_poll, live_until, expires_at"

func scanSSOFlow(row *sql.Row) (SSOFlow, error) {
	var f SSOFlow
	var next, live, exp int64
	if err := row.Scan(&f.Hash, &f.Kind, &f.Provider, &f.Addr, &f.Sealed, &f.Interval, &next, &live, &exp); err != nil {
		return SSOFlow{}, err
	}
	f.NextPoll, f.LiveUntil, f.ExpiresAt = fromNanos(next), fromNanos(live), fromNanos(exp)
	return f, nil
}

// InsertSSOFlow stores f unless, at now, f.Addr already has lim.PerAddress
// live flows (ErrAddressFull), the table lim.Total (ErrFull) or, for a
// device flow, maxDevice live device flows (ErrFull; zero means no bound).
// The counts are taken inside the transaction, which every writer of the
// store, on each replica, takes in turn. The address's dead flows are
// deleted first.
func (t *Tx) InsertSSOFlow(f SSOFlow, now time.Time, lim Limits, maxDevice int) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	at, next, live, exp := cd.nanos("now", now), cd.nanos("next_poll", f.NextPoll), cd.nanos("live_until", f.LiveUntil), cd.nanos("expires_at", f.ExpiresAt)
	if cd.err != nil {
		return fmt.Errorf("insert sso flow: %w", cd.err)
	}
	if _, err := t.exec("DELETE FROM sso_flows WHERE addr = ? AND live_until <= ?", f.Addr, at); err != nil {
		return fmt.Errorf("insert sso flow: drop dead: %w", err)
	}
	if err := t.bound("sso_flows", "live_until", f.Addr, at, lim, ""); err != nil {
		return fmt.Errorf("insert sso %s flow: %w", f.Kind, err)
	}
	if f.Kind == SSOFlowDevice && maxDevice > 0 {
		var n int
		if err := t.tx.QueryRow("SELECT count(*) FROM sso_flows WHERE live_until > ? AND kind = ?", at, SSOFlowDevice).Scan(&n); err != nil {
			return fmt.Errorf("insert sso device flow: count: %w", err)
		}
		if n >= maxDevice {
			return fmt.Errorf("insert sso device flow: %w: %d device flows live", ErrFull, n)
		}
	}
	if _, err := t.exec("INSERT INTO sso_flows ("+ssoFlowColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		f.Hash, f.Kind, f.Provider, f.Addr, f.Sealed, f.Interval, next, live, exp); err != nil {
		return fmt.Errorf("insert sso %s flow: %w", f.Kind, classify(err))
	}
	return nil
}

// SSOFlow returns the flow of hash from the read pool, outside the
// writer's transaction, or ErrNotFound: a poll of an unknown flow id
// costs no write transaction under the chain's lock.
func (s *Store) SSOFlow(ctx context.Context, hash string) (SSOFlow, error) {
	db, err := s.reader()
	if err != nil {
		return SSOFlow{}, err
	}
	f, err := scanSSOFlow(db.QueryRowContext(ctx, "SELECT "+ssoFlowColumns+" FROM sso_flows WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return SSOFlow{}, fmt.Errorf("sso flow: %w", ErrNotFound)
	}
	if err != nil {
		return SSOFlow{}, fmt.Errorf("sso flow: %w", err)
	}
	return f, nil
}

// SSOFlow returns the flow of hash, or ErrNotFound.
func (t *Tx) SSOFlow(hash string) (SSOFlow, error) {
	if err := t.check(); err != nil {
		return SSOFlow{}, err
	}
	f, err := scanSSOFlow(t.tx.QueryRow("SELECT "+ssoFlowColumns+" FROM sso_flows WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return SSOFlow{}, fmt.Errorf("sso flow: %w", ErrNotFound)
	}
	if err != nil {
		return SSOFlow{}, fmt.Errorf("sso flow: %w", err)
	}
	return f, nil
}

// TakeSSOFlow deletes the flow of hash and kind and returns it, live or
// not: a flow is spent by its first use. An unknown hash, or one of the
// other kind (left in place), is ErrNotFound.
func (t *Tx) TakeSSOFlow(hash, kind string) (SSOFlow, error) {
	if err := t.check(); err != nil {
		return SSOFlow{}, err
	}
	f, err := scanSSOFlow(t.tx.QueryRow("DELETE FROM sso_flows WHERE hash = ? AND kind = ? RETURNING "+ssoFlowColumns, hash, kind))
	if errors.Is(err, sql.ErrNoRows) {
		return SSOFlow{}, fmt.Errorf("take sso %s flow: %w", kind, ErrNotFound)
	}
	if err != nil {
		return SSOFlow{}, fmt.Errorf("take sso %s flow: %w", kind, err)
	}
	return f, nil
}

// ClaimSSOPoll records a client's poll of device flow hash at now: the
// flow lives until liveUntil and, only if it is due (next_poll at or
// before now), next_poll moves to next. claimed reports whether this call
// moved it, which makes the caller the one that may ask the provider:
// the UPDATE is conditional, so of two replicas polling at once one
// claims. An unknown hash is ErrNotFound.
func (t *Tx) ClaimSSOPoll(hash string, now, next, liveUntil time.Time) (claimed bool, err error) {
	if err := t.check(); err != nil {
		return false, err
	}
	var cd codec
	at, nx, live := cd.nanos("now", now), cd.nanos("next_poll", next), cd.nanos("live_until", liveUntil)
	if cd.err != nil {
		return false, fmt.Errorf("claim sso poll: %w", cd.err)
	}
	res, err := t.exec("UPDATE sso_flows SET next_poll = ?, live_until = ? WHERE hash = ? AND kind = ? AND next_poll <= ?", nx, live, hash, SSOFlowDevice, at)
	if err != nil {
		return false, fmt.Errorf("claim sso poll: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err == nil, err
	}
	res, err = t.exec("UPDATE sso_flows SET live_until = ? WHERE hash = ? AND kind = ?", live, hash, SSOFlowDevice)
	if err != nil {
		return false, fmt.Errorf("claim sso poll: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return false, err
	}
	return false, fmt.Errorf("claim sso poll: %w", ErrNotFound)
}

// SetSSOPoll sets device flow hash's interval (raised when the provider
// said slow_down), its next poll and when it is dropped unless polled
// again, once the provider answered a claimed poll: the client waits for
// that answer and then the interval it names, so its liveness counts from
// the answer, not from the claim. An unknown hash is ErrNotFound.
func (t *Tx) SetSSOPoll(hash string, interval int, next, liveUntil time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	nx, live := cd.nanos("next_poll", next), cd.nanos("live_until", liveUntil)
	if cd.err != nil {
		return fmt.Errorf("set sso poll: %w", cd.err)
	}
	res, err := t.exec("UPDATE sso_flows SET poll_interval = ?, next_poll = ?, live_until = ? WHERE hash = ? AND kind = ?", interval, nx, live, hash, SSOFlowDevice)
	if err != nil {
		return fmt.Errorf("set sso poll: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return fmt.Errorf("set sso poll: %w", ErrNotFound)
}

// ReapSSOFlows deletes the flows dead at now (past live_until) and returns
// how many.
func (t *Tx) ReapSSOFlows(now time.Time) (int, error) {
	return t.reap("sso_flows", "live_until", now)
}
