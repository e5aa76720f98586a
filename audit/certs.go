package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Certificate is the record of one signed certificate.
type Certificate struct {
	Serial         uint64 // non-zero, unique
	Kind           string // "user", "target" or "host"
	RequestID      string
	SessionID      string
	User           string
	Host           string
	Login          string
	Principals     []string
	KeyFingerprint string
	KeyID          string
	ValidAfter     time.Time
	ValidBefore    time.Time
	ClientAddr     string
	IssuedAt       time.Time
	RevokedAt      time.Time // zero unless revoked
	RevokeReason   string
	// Extensions and CriticalOptions are those the certificate was signed
	// with; host certificates have none. Empty maps come back nil.
	Extensions      map[string]string
	CriticalOptions map[string]string
}

// InsertCertificate records c. Serial must be non-zero and Kind one of
// "user", "target", "host"; a duplicate serial is ErrConflict. RevokedAt and
// RevokeReason are ignored: use RevokeCertificate.
func (t *Tx) InsertCertificate(c Certificate) error {
	if err := t.check(); err != nil {
		return err
	}
	if c.Serial == 0 {
		return errors.New("insert certificate: serial is zero")
	}
	switch c.Kind {
	case "user", "target", "host":
	default:
		return fmt.Errorf("insert certificate %d: kind %q is not user, target or host", c.Serial, c.Kind)
	}
	principals := encodeList(c.Principals)
	var cd codec
	args := []any{toSerial(c.Serial), c.Kind, c.RequestID, c.SessionID, c.User, c.Host, c.Login,
		principals, c.KeyFingerprint, c.KeyID, cd.nanos("valid_after", c.ValidAfter),
		cd.nanos("valid_before", c.ValidBefore), c.ClientAddr, cd.nanos("issued_at", c.IssuedAt),
		encodeMap(c.Extensions), encodeMap(c.CriticalOptions)}
	if cd.err != nil {
		return fmt.Errorf("insert certificate %d: %w", c.Serial, cd.err)
	}
	if _, err := t.exec(`INSERT INTO certificates (serial, kind, request_id, session_id, user, host, login,
		principals, key_fingerprint, key_id, valid_after, valid_before, client_addr, issued_at,
		extensions, critical_options)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
		return fmt.Errorf("insert certificate %d: %w", c.Serial, classify(err))
	}
	return nil
}

// RevokeCertificate marks serial revoked at at (which must be non-zero) for
// reason. An unknown serial is ErrNotFound; an already revoked one is
// ErrConflict and keeps its first revocation.
func (t *Tx) RevokeCertificate(serial uint64, at time.Time, reason string) error {
	if err := t.check(); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("revoke certificate %d: time is zero", serial)
	}
	var cd codec
	ns := cd.nanos("revoked_at", at)
	if cd.err != nil {
		return fmt.Errorf("revoke certificate %d: %w", serial, cd.err)
	}
	res, err := t.exec("UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE serial = ? AND revoked_at = 0",
		ns, reason, toSerial(serial))
	if err != nil {
		return fmt.Errorf("revoke certificate %d: %w", serial, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var revoked int64
	switch err := t.tx.QueryRow("SELECT revoked_at FROM certificates WHERE serial = ?", toSerial(serial)).Scan(&revoked); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("revoke certificate %d: %w", serial, ErrNotFound)
	case err != nil:
		return fmt.Errorf("revoke certificate %d: %w", serial, err)
	}
	return fmt.Errorf("revoke certificate %d: already revoked at %s: %w", serial, fromNanos(revoked).Format(time.RFC3339), ErrConflict)
}

const certColumns = `serial, kind, request_id, session_id, user, host, login, principals, key_fingerprint,
	key_id, valid_after, valid_before, client_addr, issued_at, revoked_at, revoke_reason,
	extensions, critical_options`

func scanCertificate(sc interface{ Scan(...any) error }) (Certificate, error) {
	var c Certificate
	var serial, after, before, issued, revoked int64
	var principals, ext, crit string
	if err := sc.Scan(&serial, &c.Kind, &c.RequestID, &c.SessionID, &c.User, &c.Host, &c.Login, &principals,
		&c.KeyFingerprint, &c.KeyID, &after, &before, &c.ClientAddr, &issued, &revoked, &c.RevokeReason,
		&ext, &crit); err != nil {
		return Certificate{}, err
	}
	c.Serial = fromSerial(serial)
	c.ValidAfter, c.ValidBefore = fromNanos(after), fromNanos(before)
	c.IssuedAt, c.RevokedAt = fromNanos(issued), fromNanos(revoked)
	var err error
	if c.Principals, err = decodeList(principals); err != nil {
		return Certificate{}, fmt.Errorf("certificate %d: principals: %w", c.Serial, err)
	}
	if c.Extensions, err = decodeMap(ext); err != nil {
		return Certificate{}, fmt.Errorf("certificate %d: extensions: %w", c.Serial, err)
	}
	if c.CriticalOptions, err = decodeMap(crit); err != nil {
		return Certificate{}, fmt.Errorf("certificate %d: critical options: %w", c.Serial, err)
	}
	return c, nil
}

// Certificate returns the certificate with serial, or ErrNotFound.
func (s *Store) Certificate(ctx context.Context, serial uint64) (Certificate, error) {
	db, err := s.reader()
	if err != nil {
		return Certificate{}, err
	}
	c, err := scanCertificate(db.QueryRowContext(ctx, "SELECT "+certColumns+" FROM certificates WHERE serial = ?", toSerial(serial)))
	if errors.Is(err, sql.ErrNoRows) {
		return Certificate{}, fmt.Errorf("certificate %d: %w", serial, ErrNotFound)
	}
	if err != nil {
		return Certificate{}, fmt.Errorf("certificate %d: %w", serial, err)
	}
	return c, nil
}

// CertificateFilter selects certificates. Zero fields do not filter.
type CertificateFilter struct {
	User      string
	RequestID string
	// ValidAt keeps certificates with ValidAfter <= ValidAt < ValidBefore
	// that were not revoked at or before ValidAt.
	ValidAt time.Time
	Kind    string
	Limit   int // <= 0: no limit
}

// Certificates returns the certificates matching f, newest IssuedAt first.
func (s *Store) Certificates(ctx context.Context, f CertificateFilter) ([]Certificate, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var w where
	w.eq("user", f.User)
	w.eq("request_id", f.RequestID)
	w.eq("kind", f.Kind)
	if !f.ValidAt.IsZero() {
		var cd codec
		at := cd.nanos("valid_at", f.ValidAt)
		if cd.err != nil {
			return nil, fmt.Errorf("list certificates: %w", cd.err)
		}
		w.add("valid_after <= ? AND valid_before > ? AND (revoked_at = 0 OR revoked_at > ?)", at, at, at)
	}
	rows, err := db.QueryContext(ctx, "SELECT "+certColumns+" FROM certificates"+w.sql()+
		" ORDER BY issued_at DESC, serial"+clampLimit(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		c, err := scanCertificate(rows)
		if err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	return out, nil
}

// RevokedSerials returns the serial of every revoked certificate, ascending,
// for building a KRL or a revoked-keys check.
func (s *Store) RevokedSerials(ctx context.Context) ([]uint64, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT serial FROM certificates WHERE revoked_at != 0")
	if err != nil {
		return nil, fmt.Errorf("list revoked serials: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var serial int64
		if err := rows.Scan(&serial); err != nil {
			return nil, fmt.Errorf("list revoked serials: %w", err)
		}
		out = append(out, fromSerial(serial))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked serials: %w", err)
	}
	// Stored as signed integers, so SQL order is wrong above 2^63.
	slices.Sort(out)
	return out, nil
}

// encodeList stores a string list as a JSON array ("[]" when empty).
func encodeList(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s) // a []string always encodes
	return string(b)
}

// decodeList reads what encodeList wrote; empty lists come back nil.
func decodeList(s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("decode list %q: %w", s, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// encodeMap stores a string map as a JSON object ("{}" when empty).
func encodeMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map[string]string always encodes
	return string(b)
}

// decodeMap reads what encodeMap wrote; empty maps come back nil.
func decodeMap(s string) (map[string]string, error) {
	var out map[string]string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("decode map %q: %w", s, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
