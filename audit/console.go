package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// consoleSchema is migration 9: the web console's one-time login codes,
// its sessions and its share links, each stored as the SHA-256 of its
// secret, never the secret. Codes and sessions also hold the SHA-256 of the
// jitssh bearer token they were made from (token_hash), so that a session
// ends when its token is deleted. (Changed in place: migration 9 landed
// with the console and no release has had it.)
const consoleSchema = `
CREATE TABLE console_codes (
	hash               TEXT PRIMARY KEY,
	user               TEXT NOT NULL,
	token_hash         TEXT NOT NULL,
	session_expires_at INTEGER NOT NULL,
	created_at         INTEGER NOT NULL,
	expires_at         INTEGER NOT NULL,
	used_at            INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE console_sessions (
	hash        TEXT PRIMARY KEY,
	user        TEXT NOT NULL,
	token_hash  TEXT NOT NULL,
	csrf        TEXT NOT NULL,
	client_addr TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	ended_at    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE share_links (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	session_id TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	revoked_by TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX share_links_session ON share_links(session_id, created_at);
`

// ConsoleCode is a one-time login code of the web console, stored as the
// SHA-256 of the code. SessionExpiresAt is the expiry of the bearer token
// that asked for it, which the console session it becomes inherits.
type ConsoleCode struct {
	Hash             string
	User             string
	TokenHash        string // SHA-256 of the bearer token that asked for it
	SessionExpiresAt time.Time
	CreatedAt        time.Time
	ExpiresAt        time.Time
	UsedAt           time.Time // zero until spent
}

// ConsoleSession is a web console login, stored as the SHA-256 of its
// cookie; CSRF is the token every form of that session carries.
type ConsoleSession struct {
	Hash       string
	User       string
	TokenHash  string // SHA-256 of the jitssh token the session ends with
	CSRF       string
	ClientAddr string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	EndedAt    time.Time // zero while the session lasts
}

// ShareLink opens one session's recording for whoever holds its token,
// stored as the SHA-256 of the token; ID names it in events and lists.
type ShareLink struct {
	ID        string
	Hash      string
	SessionID string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero unless revoked
	RevokedBy string
}

// InsertConsoleCode stores c; Hash must be a lower-case hex SHA-256.
func (t *Tx) InsertConsoleCode(c ConsoleCode) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validTokenHash(c.Hash); err != nil {
		return fmt.Errorf("insert console code: %w", err)
	}
	if err := validTokenHash(c.TokenHash); err != nil {
		return fmt.Errorf("insert console code: token: %w", err)
	}
	var cd codec
	args := []any{c.Hash, c.User, c.TokenHash, cd.nanos("session_expires_at", c.SessionExpiresAt), cd.nanos("created_at", c.CreatedAt), cd.nanos("expires_at", c.ExpiresAt)}
	if cd.err != nil {
		return fmt.Errorf("insert console code for %q: %w", c.User, cd.err)
	}
	if _, err := t.exec("INSERT INTO console_codes (hash, user, token_hash, session_expires_at, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)", args...); err != nil {
		return fmt.Errorf("insert console code for %q: %w", c.User, classify(err))
	}
	return nil
}

// SpendConsoleCode marks the code with hash used at at and returns it as
// it was before. An unknown code is ErrNotFound, one already used
// ErrConflict: a code is spent once, whatever the caller then decides.
func (t *Tx) SpendConsoleCode(hash string, at time.Time) (ConsoleCode, error) {
	if err := t.check(); err != nil {
		return ConsoleCode{}, err
	}
	var c ConsoleCode
	var sexp, created, expires, used int64
	err := t.tx.QueryRow("SELECT "+consoleCodeColumns+" FROM console_codes WHERE hash = ?", hash).
		Scan(&c.Hash, &c.User, &c.TokenHash, &sexp, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleCode{}, fmt.Errorf("console code: %w", ErrNotFound)
	}
	if err != nil {
		return ConsoleCode{}, fmt.Errorf("console code: %w", err)
	}
	c.SessionExpiresAt, c.CreatedAt, c.ExpiresAt, c.UsedAt = fromNanos(sexp), fromNanos(created), fromNanos(expires), fromNanos(used)
	if used != 0 {
		return c, fmt.Errorf("console code of %q already used: %w", c.User, ErrConflict)
	}
	var cd codec
	ns := cd.nanos("used_at", at)
	if cd.err != nil || ns == 0 {
		return c, fmt.Errorf("spend console code: time %s is not storable", at)
	}
	if _, err := t.exec("UPDATE console_codes SET used_at = ? WHERE hash = ? AND used_at = 0", ns, hash); err != nil {
		return c, fmt.Errorf("spend console code: %w", err)
	}
	return c, nil
}

const consoleCodeColumns = "hash, user, token_hash, session_expires_at, created_at, expires_at, used_at"

// ConsoleCode returns the console code with hash without spending it (a
// login page asks whose code it holds before the user confirms), or
// ErrNotFound. The caller checks expiry and use.
func (s *Store) ConsoleCode(ctx context.Context, hash string) (ConsoleCode, error) {
	db, err := s.reader()
	if err != nil {
		return ConsoleCode{}, err
	}
	var c ConsoleCode
	var sexp, created, expires, used int64
	err = db.QueryRowContext(ctx, "SELECT "+consoleCodeColumns+" FROM console_codes WHERE hash = ?", hash).
		Scan(&c.Hash, &c.User, &c.TokenHash, &sexp, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleCode{}, fmt.Errorf("console code: %w", ErrNotFound)
	}
	if err != nil {
		return ConsoleCode{}, fmt.Errorf("console code: %w", err)
	}
	c.SessionExpiresAt, c.CreatedAt, c.ExpiresAt, c.UsedAt = fromNanos(sexp), fromNanos(created), fromNanos(expires), fromNanos(used)
	return c, nil
}

// PruneConsole deletes the console codes that expired before before and
// the console sessions that expired or ended before it: neither can be
// used again, and the audit events keep their history. It returns how
// many rows it deleted.
func (t *Tx) PruneConsole(before time.Time) (int64, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	var cd codec
	ns := cd.nanos("before", before)
	if cd.err != nil {
		return 0, fmt.Errorf("prune console: %w", cd.err)
	}
	var total int64
	for _, q := range []string{
		// The cast: PostgreSQL types a bare "? > 0" as int4, and nanoseconds overflow it.
		"DELETE FROM console_codes WHERE expires_at < ? AND CAST(? AS BIGINT) > 0",
		"DELETE FROM console_sessions WHERE expires_at < ? OR (ended_at != 0 AND ended_at < ?)",
	} {
		res, err := t.exec(q, ns, ns)
		if err != nil {
			return total, fmt.Errorf("prune console: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// InsertConsoleSession stores cs; Hash must be a lower-case hex SHA-256.
func (t *Tx) InsertConsoleSession(cs ConsoleSession) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validTokenHash(cs.Hash); err != nil {
		return fmt.Errorf("insert console session: %w", err)
	}
	if err := validTokenHash(cs.TokenHash); err != nil {
		return fmt.Errorf("insert console session: token: %w", err)
	}
	var cd codec
	args := []any{cs.Hash, cs.User, cs.TokenHash, cs.CSRF, cs.ClientAddr, cd.nanos("created_at", cs.CreatedAt), cd.nanos("expires_at", cs.ExpiresAt)}
	if cd.err != nil {
		return fmt.Errorf("insert console session for %q: %w", cs.User, cd.err)
	}
	if _, err := t.exec("INSERT INTO console_sessions (hash, user, token_hash, csrf, client_addr, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)", args...); err != nil {
		return fmt.Errorf("insert console session for %q: %w", cs.User, classify(err))
	}
	return nil
}

// ConsoleSession returns the console session with hash, or ErrNotFound. It
// does not check expiry or end: the caller decides with its clock.
func (s *Store) ConsoleSession(ctx context.Context, hash string) (ConsoleSession, error) {
	db, err := s.reader()
	if err != nil {
		return ConsoleSession{}, err
	}
	var cs ConsoleSession
	var created, expires, ended int64
	err = db.QueryRowContext(ctx, "SELECT hash, user, token_hash, csrf, client_addr, created_at, expires_at, ended_at FROM console_sessions WHERE hash = ?", hash).
		Scan(&cs.Hash, &cs.User, &cs.TokenHash, &cs.CSRF, &cs.ClientAddr, &created, &expires, &ended)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, fmt.Errorf("console session: %w", ErrNotFound)
	}
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("console session: %w", err)
	}
	cs.CreatedAt, cs.ExpiresAt, cs.EndedAt = fromNanos(created), fromNanos(expires), fromNanos(ended)
	return cs, nil
}

// EndConsoleSession ends the console session with hash at at. An unknown
// or already ended session is ErrNotFound.
func (t *Tx) EndConsoleSession(hash string, at time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	ns := cd.nanos("ended_at", at)
	if cd.err != nil || ns == 0 {
		return fmt.Errorf("end console session: time %s is not storable", at)
	}
	res, err := t.exec("UPDATE console_sessions SET ended_at = ? WHERE hash = ? AND ended_at = 0", ns, hash)
	if err != nil {
		return fmt.Errorf("end console session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("end console session: %w", err)
	} else if n == 0 {
		return fmt.Errorf("end console session: %w", ErrNotFound)
	}
	return nil
}

// InsertShareLink stores l; Hash must be a lower-case hex SHA-256 and ID
// new.
func (t *Tx) InsertShareLink(l ShareLink) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validTokenHash(l.Hash); err != nil {
		return fmt.Errorf("insert share link: %w", err)
	}
	var cd codec
	args := []any{l.ID, l.Hash, l.SessionID, l.CreatedBy, cd.nanos("created_at", l.CreatedAt), cd.nanos("expires_at", l.ExpiresAt)}
	if cd.err != nil {
		return fmt.Errorf("insert share link %s: %w", l.ID, cd.err)
	}
	if _, err := t.exec("INSERT INTO share_links (id, hash, session_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)", args...); err != nil {
		return fmt.Errorf("insert share link %s: %w", l.ID, classify(err))
	}
	return nil
}

const shareLinkColumns = "id, hash, session_id, created_by, created_at, expires_at, revoked_at, revoked_by"

func scanShareLink(sc interface{ Scan(...any) error }) (ShareLink, error) {
	var l ShareLink
	var created, expires, revoked int64
	if err := sc.Scan(&l.ID, &l.Hash, &l.SessionID, &l.CreatedBy, &created, &expires, &revoked, &l.RevokedBy); err != nil {
		return ShareLink{}, err
	}
	l.CreatedAt, l.ExpiresAt, l.RevokedAt = fromNanos(created), fromNanos(expires), fromNanos(revoked)
	return l, nil
}

// ShareLinkByHash returns the share link whose token has hash, or
// ErrNotFound; the caller checks expiry and revocation.
func (s *Store) ShareLinkByHash(ctx context.Context, hash string) (ShareLink, error) {
	return s.shareLink(ctx, "hash", hash)
}

// ShareLink returns the share link with id, or ErrNotFound.
func (s *Store) ShareLink(ctx context.Context, id string) (ShareLink, error) {
	return s.shareLink(ctx, "id", id)
}

func (s *Store) shareLink(ctx context.Context, column, value string) (ShareLink, error) {
	db, err := s.reader()
	if err != nil {
		return ShareLink{}, err
	}
	// column is one of two constants above, never outside text.
	l, err := scanShareLink(db.QueryRowContext(ctx, "SELECT "+shareLinkColumns+" FROM share_links WHERE "+column+" = ?", value))
	if errors.Is(err, sql.ErrNoRows) {
		return ShareLink{}, fmt.Errorf("share link: %w", ErrNotFound)
	}
	if err != nil {
		return ShareLink{}, fmt.Errorf("share link: %w", err)
	}
	return l, nil
}

// ShareLinks returns the share links of session sessionID (all sessions
// when empty), newest first, at most limit (<= 0: no limit).
func (s *Store) ShareLinks(ctx context.Context, sessionID string, limit int) ([]ShareLink, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var w where
	w.eq("session_id", sessionID)
	rows, err := db.QueryContext(ctx, "SELECT "+shareLinkColumns+" FROM share_links"+w.sql()+" ORDER BY created_at DESC, id"+clampLimit(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	defer rows.Close()
	var out []ShareLink
	for rows.Next() {
		l, err := scanShareLink(rows)
		if err != nil {
			return nil, fmt.Errorf("share links: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	return out, nil
}

// RevokeShareLink revokes the share link id at at by by. An unknown or
// already revoked link is ErrNotFound.
func (t *Tx) RevokeShareLink(id, by string, at time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	ns := cd.nanos("revoked_at", at)
	if cd.err != nil || ns == 0 {
		return fmt.Errorf("revoke share link: time %s is not storable", at)
	}
	res, err := t.exec("UPDATE share_links SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0", ns, by, id)
	if err != nil {
		return fmt.Errorf("revoke share link %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke share link %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("revoke share link %s: %w", id, ErrNotFound)
	}
	return nil
}
