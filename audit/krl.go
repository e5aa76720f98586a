package audit

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// RevokedSerialsByKind returns the serial of every revoked certificate by
// its kind ("user", "target", "host"), each ascending, for a KRL with one
// section per CA.
func (s *Store) RevokedSerialsByKind(ctx context.Context) (map[string][]uint64, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT kind, serial FROM certificates WHERE revoked_at != 0")
	if err != nil {
		return nil, fmt.Errorf("list revoked serials: %w", err)
	}
	defer rows.Close()
	out := map[string][]uint64{}
	for rows.Next() {
		var kind string
		var serial int64
		if err := rows.Scan(&kind, &serial); err != nil {
			return nil, fmt.Errorf("list revoked serials: %w", err)
		}
		out[kind] = append(out[kind], fromSerial(serial))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked serials: %w", err)
	}
	// Stored as signed integers, so SQL order is wrong above 2^63.
	for _, s := range out {
		slices.Sort(s)
	}
	return out, nil
}

// LiveTargetSerials returns, as this transaction sees them, the serials of
// the target certificates minted for the sessions of user certificate
// userSerial (those of its request) that are neither revoked nor expired at
// now: what must be revoked with it.
func (t *Tx) LiveTargetSerials(userSerial uint64, now time.Time) ([]uint64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	var cd codec
	ns := cd.nanos("now", now)
	if cd.err != nil {
		return nil, fmt.Errorf("target certificates of %d: %w", userSerial, cd.err)
	}
	rows, err := t.tx.Query(`SELECT tc.serial FROM certificates uc
		JOIN certificates tc ON tc.request_id = uc.request_id AND tc.kind = 'target'
		WHERE uc.serial = ? AND uc.kind = 'user' AND uc.request_id != ''
		AND tc.revoked_at = 0 AND tc.valid_before > ?`, toSerial(userSerial), ns)
	if err != nil {
		return nil, fmt.Errorf("target certificates of %d: %w", userSerial, err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var serial int64
		if err := rows.Scan(&serial); err != nil {
			return nil, fmt.Errorf("target certificates of %d: %w", userSerial, err)
		}
		out = append(out, fromSerial(serial))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("target certificates of %d: %w", userSerial, err)
	}
	slices.Sort(out)
	return out, nil
}
