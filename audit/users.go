package audit

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Token is an API bearer token. Only its hash is stored.
type Token struct {
	Hash      string // lower-case hex SHA-256 of the bearer token
	User      string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

func validTokenHash(h string) error {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 || hex.EncodeToString(b) != h {
		return fmt.Errorf("token hash %q is not 64 lower-case hex digits", h)
	}
	return nil
}

// InsertToken stores t; Hash must be a lower-case hex SHA-256 and User
// non-empty. An existing hash is ErrConflict.
func (t *Tx) InsertToken(tok Token) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validTokenHash(tok.Hash); err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	if tok.User == "" {
		return errors.New("insert token: user is empty")
	}
	var cd codec
	issued, expires := cd.nanos("issued_at", tok.IssuedAt), cd.nanos("expires_at", tok.ExpiresAt)
	if cd.err != nil {
		return fmt.Errorf("insert token for %q: %w", tok.User, cd.err)
	}
	if _, err := t.exec("INSERT INTO tokens (hash, user, issued_at, expires_at) VALUES (?, ?, ?, ?)",
		tok.Hash, tok.User, issued, expires); err != nil {
		return fmt.Errorf("insert token for %q: %w", tok.User, classify(err))
	}
	return nil
}

// DeleteToken removes the token with hash, or returns ErrNotFound.
func (t *Tx) DeleteToken(hash string) error {
	if err := t.check(); err != nil {
		return err
	}
	res, err := t.exec("DELETE FROM tokens WHERE hash = ?", hash)
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete token: %w", err)
	} else if n == 0 {
		return fmt.Errorf("delete token: %w", ErrNotFound)
	}
	return nil
}

// Token returns the token with hash, or ErrNotFound. It does not check
// ExpiresAt: the caller decides with its own clock.
func (s *Store) Token(ctx context.Context, hash string) (Token, error) {
	db, err := s.reader()
	if err != nil {
		return Token{}, err
	}
	var tok Token
	var issued, expires int64
	err = db.QueryRowContext(ctx, "SELECT hash, user, issued_at, expires_at FROM tokens WHERE hash = ?", hash).
		Scan(&tok.Hash, &tok.User, &issued, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is a credential's digest; keep it out of error text.
		return Token{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("token: %w", err)
	}
	tok.IssuedAt, tok.ExpiresAt = fromNanos(issued), fromNanos(expires)
	return tok, nil
}

// User is an enrolled user (added by an admin, merged into the policy's).
type User struct {
	Name      string
	Groups    []string
	Keys      []string // authorized_keys lines
	CreatedAt time.Time
	CreatedBy string
}

// PutUser creates or replaces the user u.Name.
func (t *Tx) PutUser(u User) error {
	if err := t.check(); err != nil {
		return err
	}
	if u.Name == "" {
		return errors.New("put user: name is empty")
	}
	var cd codec
	created := cd.nanos("created_at", u.CreatedAt)
	if cd.err != nil {
		return fmt.Errorf("put user %q: %w", u.Name, cd.err)
	}
	if _, err := t.exec(`INSERT INTO users (name, groups_json, keys_json, created_at, created_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET groups_json = excluded.groups_json, keys_json = excluded.keys_json,
		created_at = excluded.created_at, created_by = excluded.created_by`,
		u.Name, encodeList(u.Groups), encodeList(u.Keys), created, u.CreatedBy); err != nil {
		return fmt.Errorf("put user %q: %w", u.Name, err)
	}
	return nil
}

// DeleteUser removes the user name, or returns ErrNotFound.
func (t *Tx) DeleteUser(name string) error {
	if err := t.check(); err != nil {
		return err
	}
	res, err := t.exec("DELETE FROM users WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("delete user %q: %w", name, ErrNotFound)
	}
	return nil
}

// Users returns every enrolled user, ordered by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, usersQuery)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return scanUsers(rows)
}

// Users returns every enrolled user, ordered by name, as this transaction
// sees them: a check of the enrolled users and the write it decides commit
// together (no other enrolment runs in between).
func (t *Tx) Users() ([]User, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(usersQuery)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return scanUsers(rows)
}

const usersQuery = "SELECT name, groups_json, keys_json, created_at, created_by FROM users ORDER BY name"

// scanUsers reads and closes the rows of usersQuery.
func scanUsers(rows *sql.Rows) ([]User, error) {
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var groups, keys string
		var created int64
		if err := rows.Scan(&u.Name, &groups, &keys, &created, &u.CreatedBy); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		var err error
		if u.Groups, err = decodeList(groups); err != nil {
			return nil, fmt.Errorf("list users: user %q groups: %w", u.Name, err)
		}
		if u.Keys, err = decodeList(keys); err != nil {
			return nil, fmt.Errorf("list users: user %q keys: %w", u.Name, err)
		}
		u.CreatedAt = fromNanos(created)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}
