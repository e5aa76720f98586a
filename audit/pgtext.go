package audit

import (
	"context"
	"database/sql/driver"
	"strings"
)

// PostgreSQL's TEXT cannot hold a NUL byte, while text from outside (an
// SSH user name, an exec command) may carry one, and SQLite stores it and
// gives it back as it came. So on PostgreSQL, at the driver (pgConn), every
// bound string is escaped and every scanned one unescaped:
//
//	NUL  -> 0x01 0x01
//	0x01 -> 0x01 0x02
//
// Nothing else changes, so text without either byte (nearly all) is stored
// as it is. The code is one-to-one, so equality on the stored text is
// equality on the text; its codes are ordered as the bytes they stand for
// and none is a prefix of another, so byte order (COLLATE "C") is kept too,
// and prefix ranges still select the same rows. A LIKE pattern escaped the
// same way matches every row whose text matches it and, rarely, one more
// (a pattern's 0x01 0x02 inside an escaped 0x00 0x02): Search narrows by
// LIKE and decides on the text itself, so its hits are the same. The chain
// hashes the Go values, before escaping, so it is the same on both engines.

// pgEscape is s as PostgreSQL stores it.
func pgEscape(s string) string {
	if strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString("\x01\x01")
		case 1:
			b.WriteString("\x01\x02")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// pgUnescape undoes pgEscape. A 0x01 that starts no code (text some other
// program wrote) is kept as it is.
func pgUnescape(s string) string {
	if strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 1 && i+1 < len(s) && (s[i+1] == 1 || s[i+1] == 2) {
			b.WriteByte(s[i+1] - 1)
			i++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// pgRows unescapes the text of each row it reads.
type pgRows struct {
	driver.Rows
}

func (r pgRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		if s, ok := v.(string); ok {
			dest[i] = pgUnescape(s)
		}
	}
	return nil
}

// pgStmt is a prepared statement whose rows are unescaped; its arguments
// are escaped by pgConn.CheckNamedValue, which database/sql asks for every
// statement of the connection.
type pgStmt struct {
	driver.Stmt
}

func (s pgStmt) Query(args []driver.Value) (driver.Rows, error) {
	//lint:ignore SA1019 the method of driver.Stmt itself, kept for a caller without a context
	rows, err := s.Stmt.Query(args)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (s pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.Stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (s pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	e, ok := s.Stmt.(driver.StmtExecContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	return e.ExecContext(ctx, args)
}
