package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is the record of one bastion session (one SSH channel recorded).
type Session struct {
	ID              string
	RequestID       string
	User            string
	Host            string
	Login           string
	Serial          uint64 // the user certificate that opened it
	TargetSerial    uint64 // the per-session target certificate
	ClientAddr      string
	Command         string // empty for an interactive shell
	StartedAt       time.Time
	EndedAt         time.Time // zero while live
	ExitStatus      int
	BytesIn         int64
	BytesOut        int64
	RecordingPath   string
	RecordingSHA256 string
	RecordingSize   int64
	EndReason       string
	// Replica is the ID of the jitd replica whose bastion records the
	// session; empty for sessions from before replicas.
	Replica string
}

const sessionColumns = `id, request_id, user, host, login, serial, target_serial, client_addr, command, started_at,
	ended_at, exit_status, bytes_in, bytes_out, recording_path, recording_sha256, recording_size, end_reason, replica`

func scanSession(sc interface{ Scan(...any) error }) (Session, error) {
	var s Session
	var serial, target, started, ended int64
	if err := sc.Scan(&s.ID, &s.RequestID, &s.User, &s.Host, &s.Login, &serial, &target, &s.ClientAddr, &s.Command,
		&started, &ended, &s.ExitStatus, &s.BytesIn, &s.BytesOut, &s.RecordingPath, &s.RecordingSHA256,
		&s.RecordingSize, &s.EndReason, &s.Replica); err != nil {
		return Session{}, err
	}
	s.Serial, s.TargetSerial = fromSerial(serial), fromSerial(target)
	s.StartedAt, s.EndedAt = fromNanos(started), fromNanos(ended)
	return s, nil
}

// InsertSession records a session as it starts. ID and StartedAt are
// required; an existing ID is ErrConflict. The end fields are stored as given
// (normally zero) and later set by EndSession.
func (t *Tx) InsertSession(s Session) error {
	if err := t.check(); err != nil {
		return err
	}
	if s.ID == "" {
		return errors.New("insert session: id is empty")
	}
	if s.StartedAt.IsZero() {
		return fmt.Errorf("insert session %q: started_at is zero", s.ID)
	}
	s.cleanText()
	var cd codec
	args := []any{s.ID, s.RequestID, s.User, s.Host, s.Login, toSerial(s.Serial), toSerial(s.TargetSerial),
		s.ClientAddr, s.Command, cd.nanos("started_at", s.StartedAt), cd.nanos("ended_at", s.EndedAt), s.ExitStatus,
		s.BytesIn, s.BytesOut, s.RecordingPath, s.RecordingSHA256, s.RecordingSize, s.EndReason, s.Replica}
	if cd.err != nil {
		return fmt.Errorf("insert session %q: %w", s.ID, cd.err)
	}
	if _, err := t.exec(`INSERT INTO sessions (`+sessionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
		return fmt.Errorf("insert session %q: %w", s.ID, classify(err))
	}
	return nil
}

// cleanText makes s's text what the store keeps, as Append does for an
// event: valid UTF-8 (an exec command may be a Latin-1 file name, which
// PostgreSQL's TEXT refuses), and the fields its session.end event repeats
// bounded as the event's are (MaxIndexedText), so that the two agree.
func (s *Session) cleanText() {
	for _, f := range []*string{&s.RequestID, &s.User, &s.Host, &s.Login, &s.ClientAddr} {
		*f = BoundText(*f, MaxIndexedText)
	}
	for _, f := range []*string{&s.ID, &s.Command, &s.RecordingPath, &s.RecordingSHA256, &s.EndReason, &s.Replica} {
		*f = clean(*f)
	}
}

// SessionEnd is how a session ended: the facts that the session's row and
// its chained session.end event both carry, and that Verify checks the row
// and the recording file against.
type SessionEnd struct {
	ID              string
	EndedAt         time.Time // required
	ExitStatus      int
	BytesIn         int64
	BytesOut        int64
	RecordingPath   string // where the recording is; empty when there is none
	RecordingSHA256 string // hex SHA-256 of the whole recording file
	RecordingSize   int64  // its size in bytes
	EndReason       string
}

// EndSession records the end of session end.ID in one step: it sets the end
// fields of the session's row and appends the chained session.end event that
// carries the same facts (its Time is EndedAt, its Code the EndReason, its
// other fields those of the row). It is the only writer of either, so that
// Verify can trust the event to vouch for the row. An unknown ID is
// ErrNotFound; a session already ended is ErrConflict.
func (t *Tx) EndSession(end SessionEnd) error {
	if err := t.check(); err != nil {
		return err
	}
	if end.EndedAt.IsZero() {
		return fmt.Errorf("end session %q: ended_at is zero", end.ID)
	}
	for _, f := range []*string{&end.RecordingPath, &end.RecordingSHA256, &end.EndReason} {
		*f = clean(*f)
	}
	var cd codec
	ended := cd.nanos("ended_at", end.EndedAt)
	if cd.err != nil {
		return fmt.Errorf("end session %q: %w", end.ID, cd.err)
	}
	var s Session
	var serial int64
	err := t.tx.QueryRow(`UPDATE sessions SET ended_at = ?, exit_status = ?, bytes_in = ?, bytes_out = ?,
		recording_path = ?, recording_sha256 = ?, recording_size = ?, end_reason = ? WHERE id = ? AND ended_at = 0
		RETURNING request_id, user, host, login, serial, client_addr`,
		ended, end.ExitStatus, end.BytesIn, end.BytesOut, end.RecordingPath, end.RecordingSHA256, end.RecordingSize,
		end.EndReason, end.ID).Scan(&s.RequestID, &s.User, &s.Host, &s.Login, &serial, &s.ClientAddr)
	if errors.Is(err, sql.ErrNoRows) {
		return t.whyNotEnded(end.ID)
	}
	if err != nil {
		return fmt.Errorf("end session %q: %w", end.ID, err)
	}
	if _, err := t.Append(Event{Time: end.EndedAt, Type: eventSessionEnd, Code: end.EndReason, Actor: s.User,
		User: s.User, Host: s.Host, Login: s.Login, RequestID: s.RequestID, SessionID: end.ID,
		Serial: fromSerial(serial), ClientAddr: s.ClientAddr, Data: end.data()}); err != nil {
		return fmt.Errorf("end session %q: %w", end.ID, err)
	}
	return nil
}

// whyNotEnded explains why EndSession updated no row.
func (t *Tx) whyNotEnded(id string) error {
	var prev int64
	switch err := t.tx.QueryRow("SELECT ended_at FROM sessions WHERE id = ?", id).Scan(&prev); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("end session %q: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("end session %q: %w", id, err)
	}
	return fmt.Errorf("end session %q: already ended at %s: %w", id, fromNanos(prev).Format(time.RFC3339Nano), ErrConflict)
}

// Session returns the session with id, or ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (Session, error) {
	db, err := s.reader()
	if err != nil {
		return Session{}, err
	}
	sess, err := scanSession(db.QueryRowContext(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("session %q: %w", id, err)
	}
	return sess, nil
}

// SessionFilter selects sessions. Zero fields do not filter.
type SessionFilter struct {
	User, Host string
	Login      string    // the target account; empty does not filter
	Since      time.Time // StartedAt >= Since
	Until      time.Time // StartedAt < Until
	Live       bool      // true: only sessions not yet finished (EndedAt zero)
	Limit      int       // <= 0: no limit
}

// Sessions returns the sessions matching f, newest StartedAt first.
func (s *Store) Sessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var w where
	var cd codec
	w.eq("user", f.User)
	w.eq("host", f.Host)
	w.eq("login", f.Login)
	if !f.Since.IsZero() {
		w.add("started_at >= ?", cd.nanos("since", f.Since))
	}
	if !f.Until.IsZero() {
		w.add("started_at < ?", cd.nanos("until", f.Until))
	}
	if f.Live {
		w.add("ended_at = 0")
	}
	if cd.err != nil {
		return nil, fmt.Errorf("list sessions: %w", cd.err)
	}
	rows, err := db.QueryContext(ctx, "SELECT "+sessionColumns+" FROM sessions"+w.sql()+
		" ORDER BY started_at DESC, id"+clampLimit(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}
