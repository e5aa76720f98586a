package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Host is an enrolled target host (hosts as data): what join recorded, its
// current host certificate and, once removed, when. A removed host's row
// stays so that known_hosts can list its key as @revoked.
type Host struct {
	Name    string
	Address string // host:port, as the bastion dials it
	// HostKey is the host's public key in authorized_keys form; may be
	// empty.
	HostKey    string
	Labels     map[string]string
	EnrolledAt time.Time
	EnrolledBy string
	// CertSerial and CertExpiresAt describe the host certificate issued
	// last (zero: none).
	CertSerial    uint64
	CertExpiresAt time.Time
	LastSeen      time.Time // zero: never
	RemovedAt     time.Time // zero unless removed
}

// JoinToken is a one-time join token of a host. Only its hash is stored.
type JoinToken struct {
	Hash      string // lower-case hex SHA-256 of the token text
	Host      string
	Address   string
	Labels    map[string]string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until used
}

// PutHost creates or replaces the host h.Name (a re-join or a renewal
// writes the whole row again).
func (t *Tx) PutHost(h Host) error {
	if err := t.check(); err != nil {
		return err
	}
	if h.Name == "" || h.Address == "" {
		return fmt.Errorf("put host %q: name and address are required", h.Name)
	}
	var cd codec
	args := []any{h.Name, h.Address, h.HostKey, encodeMap(h.Labels), cd.nanos("enrolled_at", h.EnrolledAt), h.EnrolledBy,
		toSerial(h.CertSerial), cd.nanos("cert_expires_at", h.CertExpiresAt), cd.nanos("last_seen", h.LastSeen),
		cd.nanos("removed_at", h.RemovedAt)}
	if cd.err != nil {
		return fmt.Errorf("put host %q: %w", h.Name, cd.err)
	}
	if _, err := t.exec(`INSERT INTO hosts (name, address, host_key, labels, enrolled_at, enrolled_by, cert_serial,
		cert_expires_at, last_seen, removed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET address = excluded.address, host_key = excluded.host_key,
		labels = excluded.labels, enrolled_at = excluded.enrolled_at, enrolled_by = excluded.enrolled_by,
		cert_serial = excluded.cert_serial, cert_expires_at = excluded.cert_expires_at,
		last_seen = excluded.last_seen, removed_at = excluded.removed_at`, args...); err != nil {
		return fmt.Errorf("put host %q: %w", h.Name, err)
	}
	return nil
}

const hostColumns = `name, address, host_key, labels, enrolled_at, enrolled_by, cert_serial, cert_expires_at,
	last_seen, removed_at`

func scanHost(sc interface{ Scan(...any) error }) (Host, error) {
	var h Host
	var labels string
	var enrolled, serial, expires, seen, removed int64
	if err := sc.Scan(&h.Name, &h.Address, &h.HostKey, &labels, &enrolled, &h.EnrolledBy, &serial, &expires,
		&seen, &removed); err != nil {
		return Host{}, err
	}
	var err error
	if h.Labels, err = decodeMap(labels); err != nil {
		return Host{}, fmt.Errorf("host %q: labels: %w", h.Name, err)
	}
	h.EnrolledAt, h.CertSerial, h.CertExpiresAt = fromNanos(enrolled), fromSerial(serial), fromNanos(expires)
	h.LastSeen, h.RemovedAt = fromNanos(seen), fromNanos(removed)
	return h, nil
}

// Host returns the host name as this transaction sees it (removed or
// not), or ErrNotFound.
func (t *Tx) Host(name string) (Host, error) {
	if err := t.check(); err != nil {
		return Host{}, err
	}
	return hostRow(t.tx.QueryRow("SELECT "+hostColumns+" FROM hosts WHERE name = ?", name), name)
}

// Host returns the host name (removed or not), or ErrNotFound.
func (s *Store) Host(ctx context.Context, name string) (Host, error) {
	db, err := s.reader()
	if err != nil {
		return Host{}, err
	}
	return hostRow(db.QueryRowContext(ctx, "SELECT "+hostColumns+" FROM hosts WHERE name = ?", name), name)
}

func hostRow(row *sql.Row, name string) (Host, error) {
	h, err := scanHost(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Host{}, fmt.Errorf("host %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Host{}, fmt.Errorf("host %q: %w", name, err)
	}
	return h, nil
}

// Hosts returns every host row, removed ones included, ordered by name.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT "+hostColumns+" FROM hosts ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return out, nil
}

// InsertJoinToken stores tok; Hash must be a lower-case hex SHA-256 and
// Host non-empty. An existing hash is ErrConflict.
func (t *Tx) InsertJoinToken(tok JoinToken) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validTokenHash(tok.Hash); err != nil {
		return fmt.Errorf("insert join token: %w", err)
	}
	if tok.Host == "" {
		return errors.New("insert join token: host is empty")
	}
	var cd codec
	args := []any{tok.Hash, tok.Host, tok.Address, encodeMap(tok.Labels), tok.CreatedBy,
		cd.nanos("created_at", tok.CreatedAt), cd.nanos("expires_at", tok.ExpiresAt), cd.nanos("used_at", tok.UsedAt)}
	if cd.err != nil {
		return fmt.Errorf("insert join token for %q: %w", tok.Host, cd.err)
	}
	if _, err := t.exec(`INSERT INTO join_tokens (token_hash, host, address, labels, created_by, created_at, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
		return fmt.Errorf("insert join token for %q: %w", tok.Host, classify(err))
	}
	return nil
}

// JoinToken returns the join token with hash as this transaction sees it,
// or ErrNotFound. It does not check ExpiresAt or UsedAt: the caller
// decides with its own clock, in the transaction that spends the token.
func (t *Tx) JoinToken(hash string) (JoinToken, error) {
	if err := t.check(); err != nil {
		return JoinToken{}, err
	}
	var tok JoinToken
	var labels string
	var created, expires, used int64
	err := t.tx.QueryRow(`SELECT token_hash, host, address, labels, created_by, created_at, expires_at, used_at
		FROM join_tokens WHERE token_hash = ?`, hash).
		Scan(&tok.Hash, &tok.Host, &tok.Address, &labels, &tok.CreatedBy, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is a credential's digest; keep it out of error text.
		return JoinToken{}, fmt.Errorf("join token: %w", ErrNotFound)
	}
	if err != nil {
		return JoinToken{}, fmt.Errorf("join token: %w", err)
	}
	if tok.Labels, err = decodeMap(labels); err != nil {
		return JoinToken{}, fmt.Errorf("join token for %q: labels: %w", tok.Host, err)
	}
	tok.CreatedAt, tok.ExpiresAt, tok.UsedAt = fromNanos(created), fromNanos(expires), fromNanos(used)
	return tok, nil
}

// UseJoinToken marks the join token with hash used at at. A token already
// used is ErrConflict, an unknown one ErrNotFound: a token is spent once.
func (t *Tx) UseJoinToken(hash string, at time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	var cd codec
	ns := cd.nanos("used_at", at)
	if cd.err != nil || ns == 0 {
		return fmt.Errorf("use join token: time %s is not storable", at)
	}
	res, err := t.exec("UPDATE join_tokens SET used_at = ? WHERE token_hash = ? AND used_at = 0", ns, hash)
	if err != nil {
		return fmt.Errorf("use join token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("use join token: %w", err)
	} else if n == 0 {
		if _, err := t.JoinToken(hash); err != nil {
			return err
		}
		return fmt.Errorf("use join token: already used: %w", ErrConflict)
	}
	return nil
}

// LiveHostSerials returns, as this transaction sees them, the serials of
// the certificates of kind ("user", "target" or "host") recorded for host
// that are neither expired at now nor revoked, ascending: what removing
// the host must revoke.
func (t *Tx) LiveHostSerials(host, kind string, now time.Time) ([]uint64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	var cd codec
	ns := cd.nanos("now", now)
	if cd.err != nil {
		return nil, fmt.Errorf("live %s certificates of host %q: %w", kind, host, cd.err)
	}
	rows, err := t.tx.Query(`SELECT serial FROM certificates WHERE host = ? AND kind = ? AND revoked_at = 0
		AND valid_before > ?`, host, kind, ns)
	if err != nil {
		return nil, fmt.Errorf("live %s certificates of host %q: %w", kind, host, err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var serial int64
		if err := rows.Scan(&serial); err != nil {
			return nil, fmt.Errorf("live %s certificates of host %q: %w", kind, host, err)
		}
		out = append(out, fromSerial(serial))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("live %s certificates of host %q: %w", kind, host, err)
	}
	slices.Sort(out)
	return out, nil
}
