package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// States of an ephemeral account (AccountPlanned and so on), as stored.
const (
	// AccountPlanned: the grant has its login; nothing exists on the
	// target yet.
	AccountPlanned = "planned"
	// AccountCreated: the target's helper created it, with UID.
	AccountCreated = "created"
	// AccountRemoving: the grant is over and a removal failed at least
	// once; it is retried at NextAttempt.
	AccountRemoving = "removing"
	// AccountRemoved: removed from the target (or never created).
	AccountRemoved = "removed"
	// AccountFailed: a create was refused or failed; the sessions of the
	// grant are refused until a create succeeds, and the account is
	// removed after the grant like a created one.
	AccountFailed = "failed"
)

// Account is the record of one ephemeral grant's account on its host.
type Account struct {
	RequestID, Host, Login, User string
	// UID is the target's UID once created (0 before).
	UID int
	// Groups, Sudo and Shell are the role's account rule in force when
	// the request was made.
	Groups, Sudo []string
	Shell        string
	State        string
	// Attempts counts the failed operations since the last success (a
	// create, or the removals); NextAttempt is when to try again.
	Attempts    int
	NextAttempt time.Time
	LastError   string
	// CreateSent is true once a create was sent to the target: from then
	// on, removal must ask the target even if no answer came back.
	CreateSent                      bool
	PlannedAt, CreatedAt, RemovedAt time.Time
}

// InsertAccount records a planned account. A request, login or UID
// already recorded on that host is ErrConflict: names are never reused.
func (t *Tx) InsertAccount(a Account) error {
	if err := t.check(); err != nil {
		return err
	}
	if a.RequestID == "" || a.Host == "" || a.Login == "" || a.Shell == "" {
		return fmt.Errorf("insert account %q on %q: request id, host, login and shell are required", a.Login, a.Host)
	}
	if a.State == "" {
		a.State = AccountPlanned
	}
	var cd codec
	args := []any{a.RequestID, a.Host, a.Login, a.User, a.UID, encodeList(a.Groups), encodeList(a.Sudo), a.Shell, a.State,
		a.Attempts, cd.nanos("next_attempt", a.NextAttempt), a.LastError, a.CreateSent,
		cd.nanos("planned_at", a.PlannedAt), cd.nanos("created_at", a.CreatedAt), cd.nanos("removed_at", a.RemovedAt)}
	if cd.err != nil {
		return fmt.Errorf("insert account %q on %q: %w", a.Login, a.Host, cd.err)
	}
	if _, err := t.exec(`INSERT INTO ephemeral_accounts (request_id, host, login, user, uid, groups, sudo, shell, state,
		attempts, next_attempt, last_error, create_sent, planned_at, created_at, removed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
		return fmt.Errorf("insert account %q on %q: %w", a.Login, a.Host, classify(err))
	}
	return nil
}

// UpdateAccount writes a's UID, state, attempts, next attempt, last error,
// create_sent and times to the row of a.RequestID (ErrNotFound if none).
// A UID another account of the host had is ErrConflict.
func (t *Tx) UpdateAccount(a Account) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	args := []any{a.UID, a.State, a.Attempts, cd.nanos("next_attempt", a.NextAttempt), a.LastError, a.CreateSent,
		cd.nanos("created_at", a.CreatedAt), cd.nanos("removed_at", a.RemovedAt), a.RequestID}
	if cd.err != nil {
		return fmt.Errorf("update account of %q: %w", a.RequestID, cd.err)
	}
	res, err := t.exec(`UPDATE ephemeral_accounts SET uid = ?, state = ?, attempts = ?, next_attempt = ?, last_error = ?,
		create_sent = ?, created_at = ?, removed_at = ? WHERE request_id = ?`, args...)
	if err != nil {
		return fmt.Errorf("update account of %q: %w", a.RequestID, classify(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update account of %q: %w", a.RequestID, ErrNotFound)
	}
	return nil
}

const accountColumns = `request_id, host, login, user, uid, groups, sudo, shell, state, attempts, next_attempt,
	last_error, create_sent, planned_at, created_at, removed_at`

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var groups, sudo string
	var next, planned, created, removed int64
	if err := sc.Scan(&a.RequestID, &a.Host, &a.Login, &a.User, &a.UID, &groups, &sudo, &a.Shell, &a.State, &a.Attempts,
		&next, &a.LastError, &a.CreateSent, &planned, &created, &removed); err != nil {
		return Account{}, err
	}
	var err error
	if a.Groups, err = decodeList(groups); err != nil {
		return Account{}, fmt.Errorf("account %q: groups: %w", a.Login, err)
	}
	if a.Sudo, err = decodeList(sudo); err != nil {
		return Account{}, fmt.Errorf("account %q: sudo: %w", a.Login, err)
	}
	a.NextAttempt, a.PlannedAt, a.CreatedAt, a.RemovedAt = fromNanos(next), fromNanos(planned), fromNanos(created), fromNanos(removed)
	return a, nil
}

func accountRow(row *sql.Row, requestID string) (Account, error) {
	a, err := scanAccount(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("account of request %q: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("account of request %q: %w", requestID, err)
	}
	return a, nil
}

// Account returns the account of request requestID as this transaction
// sees it, or ErrNotFound (the request is not ephemeral).
func (t *Tx) Account(requestID string) (Account, error) {
	if err := t.check(); err != nil {
		return Account{}, err
	}
	return accountRow(t.tx.QueryRow("SELECT "+accountColumns+" FROM ephemeral_accounts WHERE request_id = ?", requestID), requestID)
}

// Account returns the account of request requestID, or ErrNotFound.
func (s *Store) Account(ctx context.Context, requestID string) (Account, error) {
	db, err := s.reader()
	if err != nil {
		return Account{}, err
	}
	return accountRow(db.QueryRowContext(ctx, "SELECT "+accountColumns+" FROM ephemeral_accounts WHERE request_id = ?", requestID), requestID)
}

// AccountLoginTaken reports whether login was ever recorded on host.
func (s *Store) AccountLoginTaken(ctx context.Context, host, login string) (bool, error) {
	db, err := s.reader()
	if err != nil {
		return false, err
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM ephemeral_accounts WHERE host = ? AND login = ?", host, login).Scan(&n); err != nil {
		return false, fmt.Errorf("account login %q on %q: %w", login, host, err)
	}
	return n > 0, nil
}

// Accounts returns the accounts in the given states (every state when
// none is given), by host and login.
func (s *Store) Accounts(ctx context.Context, states ...string) ([]Account, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	q := "SELECT " + accountColumns + " FROM ephemeral_accounts"
	args := make([]any, 0, len(states))
	for i, st := range states {
		if i == 0 {
			q += " WHERE state IN (?"
		} else {
			q += ", ?"
		}
		args = append(args, st)
	}
	if len(states) > 0 {
		q += ")"
	}
	rows, err := db.QueryContext(ctx, q+" ORDER BY host, login", args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AccountCounts returns how many accounts are in each state.
func (s *Store) AccountCounts(ctx context.Context) (map[string]int, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT state, COUNT(*) FROM ephemeral_accounts GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("count accounts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count accounts: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// HighWater returns the mirrored UID high-water mark of host (0: none).
func (t *Tx) HighWater(host string) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	var hw int
	err := t.tx.QueryRow("SELECT high_water FROM ephemeral_hosts WHERE host = ?", host).Scan(&hw)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("uid high-water mark of %q: %w", host, err)
	}
	return hw, nil
}

// RaiseHighWater sets host's mirrored high-water mark to hw unless it is
// higher already: the mark only ever grows, so a UID is never reused.
func (t *Tx) RaiseHighWater(host string, hw int) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO ephemeral_hosts (host, high_water) VALUES (?, ?)
		ON CONFLICT (host) DO UPDATE SET high_water = `+t.engine.greatest("ephemeral_hosts.high_water", "excluded.high_water"), host, hw); err != nil {
		return fmt.Errorf("raise uid high-water mark of %q to %d: %w", host, hw, err)
	}
	return nil
}

// HighWater returns the mirrored UID high-water mark of host (0: none).
func (s *Store) HighWater(ctx context.Context, host string) (int, error) {
	db, err := s.reader()
	if err != nil {
		return 0, err
	}
	var hw int
	err = db.QueryRowContext(ctx, "SELECT high_water FROM ephemeral_hosts WHERE host = ?", host).Scan(&hw)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("uid high-water mark of %q: %w", host, err)
	}
	return hw, nil
}
