package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// CopyResult reports what Copy moved.
type CopyResult struct {
	Tables []TableCount // in copy order
	Events int64        // events in the chain copied
	Head   string       // hash of the last event copied (GenesisHash if none)
}

// TableCount is how many rows of one table were copied, and a digest of
// their values.
type TableCount struct {
	Table string
	Rows  int64
	// Digest is an order-free digest of the rows' values as stored on
	// PostgreSQL (rowDigest), the same for the rows sent and the rows
	// the copy holds; empty in the source's snapshot before the copy.
	Digest string
}

// Copy copies every row of the SQLite store from into the PostgreSQL store
// to, which must be empty (no row in any table): the move from the
// embedded store to PostgreSQL. The rows are read in one read transaction of
// from (one snapshot, even if a jitd still writes it; stop it first, or
// whatever it writes later is not copied) and written in one transaction of
// to that holds the chain lock, so no replica writes in between and a failed
// copy leaves to empty. Values are copied as stored (times as Unix
// nanoseconds, serials bit for bit), so the chain's hashes, which are
// computed from the values, still verify: the caller checks with to.Verify.
func Copy(ctx context.Context, from, to *Store) (CopyResult, error) {
	if from.engine != engineSQLite || to.engine != enginePostgres {
		return CopyResult{}, fmt.Errorf("copy store: from must be a SQLite store and to a PostgreSQL one, not %s to %s", from.engine, to.engine)
	}
	src, err := from.reader()
	if err != nil {
		return CopyResult{}, err
	}
	rtx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy store: read %s: %w", from.path, err)
	}
	defer rtx.Rollback()
	tables, err := copyTables(ctx, rtx)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy store: %w", err)
	}
	// The target's own write connection: the store's writer is idle (this
	// process does not write it meanwhile) and the chain lock keeps other
	// processes out.
	conn, err := to.write.Conn(ctx)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy store: %w", err)
	}
	defer conn.Close()
	want, err := snapshotOf(ctx, sqlQuerier{rtx}, tables)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy store: read %s: %w", from.path, err)
	}
	var res CopyResult
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(*pgConn)
		if !ok {
			return fmt.Errorf("target connection is a %T", dc)
		}
		res, err = copyInto(ctx, pc.Conn, rtx, tables, want)
		return err
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy store to %s: %w", to.path, err)
	}
	return res, nil
}

// copyTable is one table of the SQLite file and its columns.
type copyTable struct {
	name    string
	columns []string
	rowid   bool // has SQLite's implicit rowid (the copy keeps its order)
}

// copyTables lists the tables to copy, in the order migrations created them
// (so a referenced table comes before its references): every table but
// SQLite's own and the FTS5 index, which PostgreSQL replaces by pg_trgm.
func copyTables(ctx context.Context, tx *sql.Tx) ([]copyTable, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'session_text_doc_fts%' ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []copyTable
	for rows.Next() {
		var t copyTable
		var def string
		if err := rows.Scan(&t.name, &def); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables: %w", err)
		}
		t.rowid = !strings.Contains(strings.ToUpper(def), "WITHOUT ROWID")
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for i := range out {
		cols, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", out[i].name)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", out[i].name, err)
		}
		for cols.Next() {
			var c string
			if err := cols.Scan(&c); err != nil {
				cols.Close()
				return nil, fmt.Errorf("columns of %s: %w", out[i].name, err)
			}
			out[i].columns = append(out[i].columns, c)
		}
		cols.Close()
	}
	return out, nil
}

// copyInto writes tables from src into the PostgreSQL connection pc in one
// transaction, with COPY (a round trip per table, not per row), and commits
// only if what the transaction then holds matches want, the source's
// snapshot: each table's row count, the event count and the chain head. A
// copy that lost rows on the way (a trigger, a rule, a driver bug) is refused
// before it commits, so the target stays empty; Verify of the copy alone
// would not see it, since a shorter chain still verifies.
func copyInto(ctx context.Context, pc *stdlib.Conn, src *sql.Tx, tables []copyTable, want CopyResult) (CopyResult, error) {
	conn := pc.Conn()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return CopyResult{}, err
	}
	defer tx.Rollback(ctx)
	// A big store's COPY runs long, and the transaction sits idle while
	// the next table's rows are read from SQLite.
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return CopyResult{}, err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", chainLockKey); err != nil {
		return CopyResult{}, fmt.Errorf("lock the event chain: %w", err)
	}
	for _, t := range tables {
		var nonEmpty bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pgx.Identifier{t.name}.Sanitize()+")").Scan(&nonEmpty); err != nil {
			return CopyResult{}, fmt.Errorf("table %s: %w", t.name, err)
		}
		if nonEmpty {
			return CopyResult{}, fmt.Errorf("the target is not empty: table %s has rows (copy only into a new database)", t.name)
		}
	}
	for i, t := range tables {
		digest, err := copyRows(ctx, tx, src, t)
		if err != nil {
			return CopyResult{}, fmt.Errorf("table %s: %w", t.name, err)
		}
		want.Tables[i].Digest = digest
	}
	// The identity column of session_text_doc continues after the copied
	// ids, as SQLite's rowid would.
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('session_text_doc', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM session_text_doc`); err != nil {
		return CopyResult{}, fmt.Errorf("continue the session text ids: %w", err)
	}
	got, err := snapshotOf(ctx, pgxQuerier{tx}, tables)
	if err != nil {
		return CopyResult{}, fmt.Errorf("read the copy back: %w", err)
	}
	for i, t := range tables {
		if got.Tables[i].Digest, err = pgTableDigest(ctx, tx, t); err != nil {
			return CopyResult{}, fmt.Errorf("read the copy back: table %s: %w", t.name, err)
		}
	}
	if err := sameCopy(want, got); err != nil {
		return CopyResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return CopyResult{}, fmt.Errorf("commit: %w", err)
	}
	return want, nil
}

// rowScanner is a row of either database/sql or pgx.
type rowScanner interface{ Scan(...any) error }

// snapshotQuerier reads one row; it hides the difference between the
// SQLite side (database/sql) and the PostgreSQL side (pgx) of a copy.
type snapshotQuerier interface {
	queryRow(ctx context.Context, q string) rowScanner
}

type sqlQuerier struct{ tx *sql.Tx }

func (q sqlQuerier) queryRow(ctx context.Context, s string) rowScanner {
	return q.tx.QueryRowContext(ctx, s)
}

type pgxQuerier struct{ tx pgx.Tx }

func (q pgxQuerier) queryRow(ctx context.Context, s string) rowScanner { return q.tx.QueryRow(ctx, s) }

// snapshotOf counts each table's rows and reads the chain head (and the
// event count, its seq) as q sees them.
func snapshotOf(ctx context.Context, sq snapshotQuerier, tables []copyTable) (CopyResult, error) {
	var res CopyResult
	for _, t := range tables {
		var n int64
		if err := sq.queryRow(ctx, "SELECT COUNT(*) FROM "+pgx.Identifier{t.name}.Sanitize()).Scan(&n); err != nil {
			return CopyResult{}, fmt.Errorf("count the rows of %s: %w", t.name, err)
		}
		res.Tables = append(res.Tables, TableCount{Table: t.name, Rows: n})
	}
	res.Head = GenesisHash
	err := sq.queryRow(ctx, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").Scan(&res.Events, &res.Head)
	if err != nil && !errors.Is(err, sql.ErrNoRows) && !errors.Is(err, pgx.ErrNoRows) {
		return CopyResult{}, fmt.Errorf("read the chain head: %w", err)
	}
	return res, nil
}

// sameCopy says, naming each difference, how the copy got differs from the
// source's snapshot want.
func sameCopy(want, got CopyResult) error {
	var diffs []string
	for i, t := range want.Tables {
		if i >= len(got.Tables) || got.Tables[i] != t {
			n := int64(-1)
			if i < len(got.Tables) {
				n = got.Tables[i].Rows
			}
			if n == t.Rows {
				diffs = append(diffs, fmt.Sprintf("table %s holds other values than the source sent (digest %.16s, the source's %.16s)",
					t.Table, got.Tables[i].Digest, t.Digest))
				continue
			}
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, the source %d", t.Table, n, t.Rows))
		}
	}
	if got.Events != want.Events {
		diffs = append(diffs, fmt.Sprintf("the chain has %d events, the source %d", got.Events, want.Events))
	}
	if got.Head != want.Head {
		diffs = append(diffs, fmt.Sprintf("the chain head is %s, the source's %s", got.Head, want.Head))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the copy differs from the source (nothing committed): %s", strings.Join(diffs, "; "))
	}
	return nil
}

// copyRows streams one table's rows from src into tx with COPY and returns
// the digest of the rows it sent.
func copyRows(ctx context.Context, tx pgx.Tx, src *sql.Tx, t copyTable) (string, error) {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = `"` + c + `"` // SQLite's side: user is a keyword in neither quoted form
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + t.name
	if t.rowid {
		q += " ORDER BY rowid"
	}
	rows, err := src.QueryContext(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	sr := &sqlRows{rows: rows, n: len(cols)}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, slices.Clone(t.columns), sr); err != nil {
		return "", err
	}
	return sr.sent.String(), nil
}

// sqlRows is database/sql rows as pgx.CopyFromSource.
type sqlRows struct {
	rows *sql.Rows
	n    int
	vals []any
	err  error
	sent rowDigest // of the rows Values gave
}

func (r *sqlRows) Next() bool {
	if !r.rows.Next() {
		r.err = r.rows.Err()
		return false
	}
	r.vals = make([]any, r.n)
	ptrs := make([]any, r.n)
	for i := range r.vals {
		ptrs[i] = &r.vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		r.err = err
		return false
	}
	return true
}

// Values are the row's, text escaped as pgConn escapes what it binds
// (pgtext.go): COPY goes around it. Invalid UTF-8, which SQLite keeps
// and PostgreSQL's TEXT refuses, is replaced by U+FFFD as the store does
// on writing now (clean); the chain is not touched by it, since Append
// has always stored events cleaned (and the caller verifies the copy).
func (r *sqlRows) Values() ([]any, error) {
	for i, v := range r.vals {
		if s, ok := v.(string); ok {
			r.vals[i] = pgEscape(clean(s))
		}
	}
	if err := r.sent.add(r.vals); err != nil {
		return nil, err
	}
	return r.vals, nil
}

func (r *sqlRows) Err() error { return r.err }
