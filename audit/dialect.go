package audit

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// The store's queries are written once, in the SQL both engines share, with
// SQLite's "?" placeholders. On PostgreSQL they pass through rebind at the
// driver (pgConn below), so every method of the package stays one code path;
// the few statements whose meaning differs ask the store's engine.

// engine names the database behind a Store.
type engine int

const (
	engineSQLite engine = iota
	enginePostgres
)

func (e engine) String() string {
	if e == enginePostgres {
		return "postgres"
	}
	return "sqlite"
}

// fts5 reports whether the store keeps SQLite's FTS5 index.
func (e engine) fts5() bool { return e == engineSQLite && haveFTS5 }

// greatest is the SQL of the larger of two values: SQLite's scalar max,
// PostgreSQL's GREATEST (its max is only an aggregate).
func (e engine) greatest(a, b string) string {
	if e == enginePostgres {
		return "GREATEST(" + a + ", " + b + ")"
	}
	return "max(" + a + ", " + b + ")"
}

// rebind rewrites a query in the package's SQL for PostgreSQL: each "?" (outside
// quotes and comments) becomes $1, $2, ... in order, and the bare identifier
// user, a column name here but CURRENT_USER to PostgreSQL, is quoted.
func rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := closeQuote(q, i)
			b.WriteString(q[i:j])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
		case isIdentByte(c):
			j := i
			for j < len(q) && isIdentByte(q[j]) {
				j++
			}
			if w := q[i:j]; strings.EqualFold(w, "user") {
				b.WriteString(`"user"`)
			} else {
				b.WriteString(w)
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// closeQuote returns the index just past the quoted text that starts at
// q[i], where a doubled quote stands for itself.
func closeQuote(q string, i int) int {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		if q[j] != quote {
			continue
		}
		if j+1 < len(q) && q[j+1] == quote {
			j++
			continue
		}
		return j + 1
	}
	return len(q)
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// rebinder caches rebind's answers: the package's queries are a fixed set of
// strings (built from a few pieces), so each is rewritten once per store.
type rebinder struct {
	mu    sync.Mutex
	cache map[string]string
}

func (r *rebinder) rebind(q string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if out, ok := r.cache[q]; ok {
		return out
	}
	out := rebind(q)
	if len(r.cache) < 4096 { // bounded: a query with a literal in it is never repeated
		r.cache[q] = out
	}
	return out
}

// pgConnector opens pgx connections whose queries are rebound.
type pgConnector struct {
	inner driver.Connector
	rb    *rebinder
}

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("pgx stdlib returned a %T connection", conn)
	}
	return &pgConn{Conn: sc, rb: c.rb}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn is a pgx database/sql connection that rebinds every query.
type pgConn struct {
	*stdlib.Conn
	rb *rebinder
}

func (c *pgConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *pgConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, c.rb.rebind(q))
	if err != nil {
		return nil, err
	}
	return pgStmt{st}, nil
}

func (c *pgConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, c.rb.rebind(q), args)
}

// QueryContext rebinds q and unescapes the text of its rows (pgtext.go).
func (c *pgConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.Conn.QueryContext(ctx, c.rb.rebind(q), args)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

// classify maps either engine's uniqueness failures to ErrConflict.
func classify(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.ExtendedCode {
		case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
			return fmt.Errorf("%w: %w", ErrConflict, err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// CheckNamedValue stores a bool as the 0 or 1 that SQLite's INTEGER columns
// hold (the BIGINT columns here are the same columns), so that queries
// comparing them with 1 mean the same on both engines, and escapes text
// for PostgreSQL's TEXT, which refuses NUL (pgtext.go). What a
// driver.Valuer (sql.NullString) or a pointer stands for is escaped too:
// its value is taken here, as database/sql would take it, so none reaches
// pgx unescaped.
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	v, err := pgBindValue(nv.Value)
	if err != nil {
		return fmt.Errorf("audit: argument %d: %w", nv.Ordinal, err)
	}
	switch x := v.(type) {
	case string:
		v = pgEscape(x)
	case bool:
		v = int64(0)
		if x {
			v = int64(1)
		}
	default:
		// A named string type (a state, a kind) is text too.
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.String {
			v = pgEscape(rv.String())
		}
	}
	nv.Value = v
	return c.Conn.CheckNamedValue(nv)
}

// pgBindValue is what v stands for as a parameter: a nil pointer is NULL,
// a pointer to a string or a bool is what it points to, and a
// driver.Valuer is its Value (a string of which the caller escapes).
func pgBindValue(v any) (any, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, nil
		}
		if _, ok := v.(driver.Valuer); !ok {
			if k := rv.Elem().Kind(); k == reflect.String || k == reflect.Bool {
				return rv.Elem().Interface(), nil
			}
		}
	}
	if vr, ok := v.(driver.Valuer); ok {
		dv, err := vr.Value()
		if err != nil {
			return nil, fmt.Errorf("value of %T: %w", v, err)
		}
		return dv, nil
	}
	return v, nil
}
