package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/pgtest"
)

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"SELECT user, users FROM t WHERE user = ?", `SELECT "user", users FROM t WHERE "user" = $1`},
		{"SELECT s.user FROM s", `SELECT s."user" FROM s`},
		{"SELECT '?', 'user', \"user\" FROM t WHERE x = ?", "SELECT '?', 'user', \"user\" FROM t WHERE x = $1"},
		{"SELECT 'it''s ?' WHERE x = ?", "SELECT 'it''s ?' WHERE x = $1"},
		{"-- a user? comment\nSELECT ?", "-- a user? comment\nSELECT $1"},
		{"ON CONFLICT (user, key) DO UPDATE SET x = excluded.x", `ON CONFLICT ("user", key) DO UPDATE SET x = excluded.x`},
		{"SELECT user_name, a_user FROM t", "SELECT user_name, a_user FROM t"},
	}
	for _, tt := range tests {
		if got := rebind(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSchemasMatch checks that every migration has both texts and that,
// applied, they make the same tables with the same columns and indexes.
func TestSchemasMatch(t *testing.T) {
	if a, b := len(migrations()), len(pgMigrations()); a != b {
		t.Fatalf("SQLite has %d migrations, PostgreSQL %d: a step must be added to both", a, b)
	}
	lite, path := openTest(t)
	pg, u := openPG(t)
	ctx := context.Background()
	want := sqliteSchema(t, rawDB(t, path))
	got := pgSchema(t, rawDB(t, u))
	if !slices.Equal(got, want) {
		t.Errorf("PostgreSQL schema differs from SQLite's:\n%s", diffLines(want, got))
	}
	for _, s := range []*Store{lite, pg} {
		if _, err := s.Events(ctx, EventFilter{}); err != nil {
			t.Errorf("%s: %v", s.Engine(), err)
		}
	}
}

// pgOnly are the PostgreSQL columns and indexes SQLite has implicitly or
// does not need (a single writer cannot fork the chain).
var pgOnly = []string{"column approvals.rowid", "index events.events_prev_hash", "index session_text_doc.session_text_doc_trgm"}

func sqliteSchema(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var out []string
	for _, tbl := range queryStrings(t, db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%_fts%'") {
		for _, c := range queryStrings(t, db, "SELECT name FROM pragma_table_info(?)", tbl) {
			out = append(out, "column "+tbl+"."+c)
		}
		for _, i := range queryStrings(t, db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", tbl) {
			out = append(out, "index "+tbl+"."+i)
		}
	}
	slices.Sort(out)
	return out
}

func pgSchema(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var out []string
	for _, r := range queryStrings(t, db, `SELECT 'column ' || table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name != 'schema_version'
		UNION ALL SELECT 'index ' || tablename || '.' || indexname FROM pg_indexes
		WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'`) {
		if !slices.Contains(pgOnly, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func diffLines(want, got []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "- %s (only in SQLite)\n", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "+ %s (only in PostgreSQL)\n", g)
		}
	}
	return b.String()
}

// TestPostgresWritersShareOneChain runs two Stores (two replicas' writers)
// on one database, appending concurrently in batches: the chain they make is
// one, gapless and verified.
func TestPostgresWritersShareOneChain(t *testing.T) {
	a, u := openPG(t)
	b, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const callers, each = 8, 25
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := s.Append(ctx, Event{Type: "test", Actor: fmt.Sprintf("w%d", i), Code: fmt.Sprint(j)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	assertVerified(t, a, callers*each)
	evs, err := b.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: the chain has a gap", i, e.Seq)
		}
	}
}

// TestPostgresRefusesAFork checks the constraints that hold even when a
// writer skips the chain lock: a second event with a used seq or prev_hash
// is refused as a conflict.
func TestPostgresRefusesAFork(t *testing.T) {
	s, u := openPG(t)
	mustDo(t, s, appendMsg("one", nil))
	mustDo(t, s, appendMsg("two", nil))
	db := rawDB(t, u)
	evs, err := s.Events(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		seq       int64
		prev      string
		wantIndex string
	}{
		{"same seq", 2, evs[0].Hash + "", "events_pkey"},
		{"same prev hash", 3, evs[0].Hash, "events_prev_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Exec("INSERT INTO events (seq, time, type, prev_hash, hash) VALUES (?, 1, 'fork', ?, 'x')", tt.seq, tt.prev)
			if !errors.Is(classify(err), ErrConflict) || !strings.Contains(err.Error(), tt.wantIndex) {
				t.Fatalf("insert of a fork: error = %v, want a conflict on %s", err, tt.wantIndex)
			}
		})
	}
}

// TestPostgresMigratesOnce opens several stores on one fresh database at
// once: one applies the migrations under the lock, the others wait and
// find them applied.
func TestPostgresMigratesOnce(t *testing.T) {
	u := pgURL(t)
	const n = 3
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = OpenURL(context.Background(), u, Options{})
		}()
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("OpenURL %d: %v", i, errs[i])
			continue
		}
		defer s.Close()
	}
	var v int
	if err := rawDB(t, u).QueryRow("SELECT version FROM schema_version").Scan(&v); err != nil || v != len(pgMigrations()) {
		t.Fatalf("schema_version = %d, %v; want %d", v, err, len(pgMigrations()))
	}
}

func TestOpenURLErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"postgres://u:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", "postgres://u:xxxxx@127.0.0.1:1/x"},
		{"postgres://u@127.0.0.1:1/x?sslmode=bogus", "sslmode"},
	}
	for _, tt := range tests {
		_, err := OpenURL(context.Background(), tt.url, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("OpenURL(%q) error = %v, want it to contain %q and not the password", tt.url, err, tt.want)
		}
	}
}

// TestPostgresDown stops the database under an open store: writes and reads
// fail promptly with an error (which grant answers as audit_unavailable),
// nothing is acknowledged that was not committed, and once the database is
// back the same store writes again and the chain verifies.
func TestPostgresDown(t *testing.T) {
	srv, err := pgtest.Start()
	pgtest.Need(t, srv, err)
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	u := srv.Database(t)
	s, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustDo(t, s, appendMsg("before", nil))
	if err := srv.Halt(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Append(ctx, Event{Type: "while down"}); err == nil {
		t.Fatal("Append with the database down succeeded")
	}
	if _, err := s.Events(ctx, EventFilter{}); err == nil {
		t.Fatal("Events with the database down succeeded")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the failures took %v", d)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	var last error
	for range 50 { // the pools reconnect on their next use
		if last = s.Append(ctx, Event{Type: "after"}); last == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("Append after the database came back: %v", last)
	}
	assertVerified(t, s, 2)
}
