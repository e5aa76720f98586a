package audit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A session's search index can fall behind its recording: the bastion then
// stops queueing the session's lines and reads the rest back from the
// recording once it is complete. index_pending holds, per such session, how
// many of its lines (in the order the recording gives them) the index holds,
// and is updated in the same transaction as the IndexText call that stores
// them, so that after a crash or restart the catch-up resumes exactly where
// the committed index ends: no line is left out and none is stored twice.

// PendingIndex is a session whose search index lacks the lines from
// NextLine on.
type PendingIndex struct {
	SessionID     string
	NextLine      int64     // lines 0 to NextLine-1 are indexed
	RecordingPath string    // from the session's row; empty if it has none
	EndedAt       time.Time // zero while the session's row says it is live
	UpdatedAt     time.Time
	// Replica is the replica whose bastion recorded the session (from its
	// row; empty for sessions from before replicas): only it may catch up
	// a live one, since the others' spools do not hold it.
	Replica string
}

// SetIndexPending records that the index of session holds its first next
// lines and lacks the rest, replacing an earlier position. Call it in the
// transaction that indexes the lines up to next.
func (t *Tx) SetIndexPending(session string, next int64, now time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	if session == "" {
		return errors.New("set index pending: session id is empty")
	}
	if next < 0 {
		return fmt.Errorf("set index pending of session %q: next line %d is negative", session, next)
	}
	var cd codec
	at := cd.nanos("updated_at", now)
	if cd.err != nil {
		return fmt.Errorf("set index pending of session %q: %w", session, cd.err)
	}
	if _, err := t.exec(`INSERT INTO index_pending (session_id, next_line, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (session_id) DO UPDATE SET next_line = excluded.next_line, updated_at = excluded.updated_at`,
		session, next, at); err != nil {
		return fmt.Errorf("set index pending of session %q: %w", session, err)
	}
	return nil
}

// ClearIndexPending records that the index of session is complete. Clearing
// a session with no pending position is not an error.
func (t *Tx) ClearIndexPending(session string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.exec("DELETE FROM index_pending WHERE session_id = ?", session); err != nil {
		return fmt.Errorf("clear index pending of session %q: %w", session, err)
	}
	return nil
}

// PendingIndexes returns the sessions whose index is behind, oldest update
// first.
func (s *Store) PendingIndexes(ctx context.Context) ([]PendingIndex, error) {
	return s.pendingIndexes(ctx, "", "ORDER BY p.updated_at, p.session_id")
}

// PendingIndexOf returns the stored catch-up position of session as it is
// now, or ErrNotFound once its index is complete: what a catch-up starts
// from under its lease, since a list read earlier may be stale.
func (s *Store) PendingIndexOf(ctx context.Context, session string) (PendingIndex, error) {
	out, err := s.pendingIndexes(ctx, session, "WHERE p.session_id = ?")
	if err != nil {
		return PendingIndex{}, err
	}
	if len(out) == 0 {
		return PendingIndex{}, fmt.Errorf("pending index of session %q: %w", session, ErrNotFound)
	}
	return out[0], nil
}

// pendingIndexes reads index_pending with its sessions' rows; tail is the
// WHERE or ORDER BY clause, taking session as its one argument if set.
func (s *Store) pendingIndexes(ctx context.Context, session, tail string) ([]PendingIndex, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var args []any
	if session != "" {
		args = append(args, session)
	}
	rows, err := db.QueryContext(ctx, `SELECT p.session_id, p.next_line, p.updated_at,
		COALESCE(s.recording_path, ''), COALESCE(s.ended_at, 0), COALESCE(s.replica, '')
		FROM index_pending p LEFT JOIN sessions s ON s.id = p.session_id `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("pending indexes: %w", err)
	}
	defer rows.Close()
	var out []PendingIndex
	for rows.Next() {
		var p PendingIndex
		var updated, ended int64
		if err := rows.Scan(&p.SessionID, &p.NextLine, &updated, &p.RecordingPath, &ended, &p.Replica); err != nil {
			return nil, fmt.Errorf("pending indexes: %w", err)
		}
		p.UpdatedAt, p.EndedAt = fromNanos(updated), fromNanos(ended)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending indexes: %w", err)
	}
	return out, nil
}
