package audit

import (
	"context"
	"database/sql"
	"testing"
)

// rv3: an engineer's exec command that is not UTF-8 (a Latin-1 file name)
// is recorded on SQLite but refused on PostgreSQL, so the session is refused.
func TestRV3InvalidUTF8SessionCommand(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		err := s.Do(context.Background(), func(tx *Tx) error {
			return tx.InsertSession(Session{ID: "s1", User: "alice", Login: "root", StartedAt: at(0), Command: "exec cat caf\xe9.txt"})
		})
		if err != nil {
			t.Errorf("InsertSession with a non-UTF-8 command: %v", err)
		}
	})
}

var _ = sql.ErrNoRows

// rv3: a SQLite store holding a session whose command is not UTF-8 (which
// SQLite records) cannot be moved to PostgreSQL: the COPY stops.
func TestRV3CopyNonUTF8Command(t *testing.T) {
	from, _ := openTest(t)
	mustDo(t, from, func(tx *Tx) error {
		return tx.InsertSession(Session{ID: "s1", User: "alice", Login: "root", StartedAt: at(0), Command: "exec cat caf\xe9.txt"})
	})
	to, _ := openPG(t)
	if _, err := Copy(context.Background(), from, to); err != nil {
		t.Errorf("Copy: %v", err)
	}
}

// rv3: a driver.Valuer (sql.NullString) bound on PostgreSQL is not escaped:
// NUL is refused, and raw "\x01\x01" comes back as NUL (two values collide).
func TestRV3ValuerNotEscaped(t *testing.T) {
	s, _ := openPG(t)
	var got string
	if err := s.read.QueryRow("SELECT CAST(? AS TEXT)", sql.NullString{String: "a\x00b", Valid: true}).Scan(&got); err != nil || got != "a\x00b" {
		t.Errorf("NullString with NUL: got %q, %v", got, err)
	}
	if err := s.read.QueryRow("SELECT CAST(? AS TEXT)", sql.NullString{String: "a\x01\x01", Valid: true}).Scan(&got); err != nil || got != "a\x01\x01" {
		t.Errorf("NullString %q came back as %q, %v", "a\x01\x01", got, err)
	}
}
