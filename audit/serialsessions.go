package audit

import (
	"context"
	"fmt"
)

// SessionsOfSerial returns the sessions opened with the user certificate
// serial, newest first, at most limit (<= 0: no limit).
func (s *Store) SessionsOfSerial(ctx context.Context, serial uint64, limit int) ([]Session, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE serial = ? ORDER BY started_at DESC, id"+clampLimit(limit), toSerial(serial))
	if err != nil {
		return nil, fmt.Errorf("sessions of serial %d: %w", serial, err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("sessions of serial %d: %w", serial, err)
		}
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sessions of serial %d: %w", serial, err)
	}
	return out, nil
}
