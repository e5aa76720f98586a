package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SSOIdentity is a person who logged in at an OpenID provider: the name
// they have here, the provider and subject that name belongs to, and their
// groups at the provider at their last login or refresh (the policy in
// force maps them; empty after a refused refresh). ExpiresAt is that of
// the last token issued to them.
type SSOIdentity struct {
	Name      string
	Provider  string
	Subject   string
	Groups    []string
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// SSOLogin ties a bearer token (by hash) to the provider session it came
// from. RefreshSealed is the provider's refresh token sealed by package
// grant under a key only the bearer token gives; empty when the provider
// gave none.
type SSOLogin struct {
	TokenHash     string
	Name          string
	Provider      string
	Subject       string
	RefreshSealed []byte
	ExpiresAt     time.Time
}

// PutSSOIdentity creates or replaces the identity id.Name.
func (t *Tx) PutSSOIdentity(id SSOIdentity) error {
	if err := t.check(); err != nil {
		return err
	}
	if id.Name == "" || id.Provider == "" || id.Subject == "" {
		return fmt.Errorf("put sso identity %q: name, provider and subject are required", id.Name)
	}
	var cd codec
	exp, upd := cd.nanos("expires_at", id.ExpiresAt), cd.nanos("updated_at", id.UpdatedAt)
	if cd.err != nil {
		return fmt.Errorf("put sso identity %q: %w", id.Name, cd.err)
	}
	if _, err := t.exec(`INSERT INTO sso_identities (name, provider, subject, groups_json, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET provider = excluded.provider, subject = excluded.subject, groups_json = excluded.groups_json,
		expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		id.Name, id.Provider, id.Subject, encodeList(id.Groups), exp, upd); err != nil {
		return fmt.Errorf("put sso identity %q: %w", id.Name, err)
	}
	return nil
}

// SSOIdentity returns the identity named name as this transaction sees
// it, or ErrNotFound.
func (t *Tx) SSOIdentity(name string) (SSOIdentity, error) {
	if err := t.check(); err != nil {
		return SSOIdentity{}, err
	}
	rows, err := t.tx.Query(ssoIdentitiesQuery+" WHERE name = ?", name)
	if err != nil {
		return SSOIdentity{}, fmt.Errorf("sso identity %q: %w", name, err)
	}
	ids, err := scanSSOIdentities(rows)
	if err != nil {
		return SSOIdentity{}, err
	}
	if len(ids) == 0 {
		return SSOIdentity{}, fmt.Errorf("sso identity %q: %w", name, ErrNotFound)
	}
	return ids[0], nil
}

// SSOIdentities returns every stored SSO identity, expired ones included,
// ordered by name.
func (s *Store) SSOIdentities(ctx context.Context) ([]SSOIdentity, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, ssoIdentitiesQuery+" ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list sso identities: %w", err)
	}
	return scanSSOIdentities(rows)
}

const ssoIdentitiesQuery = "SELECT name, provider, subject, groups_json, expires_at, updated_at FROM sso_identities"

func scanSSOIdentities(rows *sql.Rows) ([]SSOIdentity, error) {
	defer rows.Close()
	var out []SSOIdentity
	for rows.Next() {
		var id SSOIdentity
		var groups string
		var exp, upd int64
		if err := rows.Scan(&id.Name, &id.Provider, &id.Subject, &groups, &exp, &upd); err != nil {
			return nil, fmt.Errorf("list sso identities: %w", err)
		}
		var err error
		if id.Groups, err = decodeList(groups); err != nil {
			return nil, fmt.Errorf("list sso identities: %q groups: %w", id.Name, err)
		}
		id.ExpiresAt, id.UpdatedAt = fromNanos(exp), fromNanos(upd)
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sso identities: %w", err)
	}
	return out, nil
}

// InsertSSOLogin stores l; an existing hash is ErrConflict.
func (t *Tx) InsertSSOLogin(l SSOLogin) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validTokenHash(l.TokenHash); err != nil {
		return fmt.Errorf("insert sso login: %w", err)
	}
	var cd codec
	exp := cd.nanos("expires_at", l.ExpiresAt)
	if cd.err != nil {
		return fmt.Errorf("insert sso login for %q: %w", l.Name, cd.err)
	}
	sealed := l.RefreshSealed
	if sealed == nil {
		sealed = []byte{}
	}
	if _, err := t.exec("INSERT INTO sso_logins (token_hash, name, provider, subject, refresh_sealed, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
		l.TokenHash, l.Name, l.Provider, l.Subject, sealed, exp); err != nil {
		return fmt.Errorf("insert sso login for %q: %w", l.Name, classify(err))
	}
	return nil
}

// SSOLogin returns the SSO login of the token with hash, or ErrNotFound
// (a key login's token has none).
func (t *Tx) SSOLogin(hash string) (SSOLogin, error) {
	if err := t.check(); err != nil {
		return SSOLogin{}, err
	}
	var l SSOLogin
	var exp int64
	err := t.tx.QueryRow("SELECT token_hash, name, provider, subject, refresh_sealed, expires_at FROM sso_logins WHERE token_hash = ?", hash).
		Scan(&l.TokenHash, &l.Name, &l.Provider, &l.Subject, &l.RefreshSealed, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return SSOLogin{}, fmt.Errorf("sso login: %w", ErrNotFound)
	}
	if err != nil {
		return SSOLogin{}, fmt.Errorf("sso login: %w", err)
	}
	l.ExpiresAt = fromNanos(exp)
	return l, nil
}

// DeleteSSOLogin removes the SSO login of the token with hash; none is
// not an error.
func (t *Tx) DeleteSSOLogin(hash string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM sso_logins WHERE token_hash = ?", hash); err != nil {
		return fmt.Errorf("delete sso login: %w", err)
	}
	return nil
}

// SSOIdentityBySubject returns the identity bound to subject at provider
// as this transaction sees it, or ErrNotFound.
func (t *Tx) SSOIdentityBySubject(provider, subject string) (SSOIdentity, error) {
	if err := t.check(); err != nil {
		return SSOIdentity{}, err
	}
	rows, err := t.tx.Query(ssoIdentitiesQuery+" WHERE provider = ? AND subject = ?", provider, subject)
	if err != nil {
		return SSOIdentity{}, fmt.Errorf("sso identity of subject at %q: %w", provider, err)
	}
	ids, err := scanSSOIdentities(rows)
	if err != nil {
		return SSOIdentity{}, err
	}
	if len(ids) == 0 {
		return SSOIdentity{}, fmt.Errorf("sso identity of subject at %q: %w", provider, ErrNotFound)
	}
	return ids[0], nil
}

// DeleteSSOIdentity removes the identity name with every SSO login and
// bearer token of that name's SSO logins, and returns how many tokens it
// revoked; an unknown name is ErrNotFound. Key-login tokens of the name
// (an enrolled user of the same name) are left alone.
func (t *Tx) DeleteSSOIdentity(name string) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	res, err := t.exec("DELETE FROM tokens WHERE hash IN (SELECT token_hash FROM sso_logins WHERE name = ?)", name)
	if err != nil {
		return 0, fmt.Errorf("delete sso identity %q: tokens: %w", name, err)
	}
	revoked, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete sso identity %q: %w", name, err)
	}
	if _, err := t.exec("DELETE FROM sso_logins WHERE name = ?", name); err != nil {
		return 0, fmt.Errorf("delete sso identity %q: logins: %w", name, err)
	}
	res, err = t.exec("DELETE FROM sso_identities WHERE name = ?", name)
	if err != nil {
		return 0, fmt.Errorf("delete sso identity %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("delete sso identity %q: %w", name, err)
	} else if n == 0 {
		return 0, fmt.Errorf("sso identity %q: %w", name, ErrNotFound)
	}
	return int(revoked), nil
}

// IsSSOLogin reports whether the token with hash came from an SSO login
// (it has an sso_logins row).
func (s *Store) IsSSOLogin(ctx context.Context, hash string) (bool, error) {
	db, err := s.reader()
	if err != nil {
		return false, err
	}
	var one int
	err = db.QueryRowContext(ctx, "SELECT 1 FROM sso_logins WHERE token_hash = ?", hash).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sso login: %w", err)
	}
	return true, nil
}
