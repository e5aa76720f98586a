package audit

import (
	"database/sql"
	"testing"
)

var _ = sql.ErrNoRows

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
