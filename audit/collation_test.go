package audit

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/jitssh/jitssh/internal/pgtest"
)

// openPGICU opens a store on a fresh PostgreSQL database whose default
// collation is ICU's en-US, where "alice" sorts before "Bob" and case
// differences are minor: unlike SQLite's BINARY. (The machine has only the
// C and C.UTF-8 locales, whose order is the bytes'; ICU needs none.)
func openPGICU(t testing.TB) (*Store, string) {
	t.Helper()
	pgURL(t) // starts the package's server
	u := pgServer.Server(t).DatabaseICU(t, "en-US")
	s, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("OpenURL(%q): %v", u, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}

var _ = pgtest.BinDir

// TestPGCollation: listings sort and prefix filters select by bytes, as on
// SQLite, on a PostgreSQL database whose own collation says otherwise.
func TestPGCollation(t *testing.T) {
	opens := []struct {
		name string
		open func(testing.TB) (*Store, string)
	}{{"sqlite", openTest}, {"postgres en-US", openPGICU}}
	for _, o := range opens {
		t.Run(o.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := o.open(t)
			mustDo(t, s, func(tx *Tx) error {
				for _, n := range []string{"carol", "alice", "Bob", "_svc", "émile", "Zed"} {
					if err := tx.PutUser(User{Name: n, CreatedAt: at(0)}); err != nil {
						return err
					}
				}
				for _, typ := range []string{"request.created", "Request.created", "request-x", "requestA", "request.", "request/"} {
					if _, err := tx.Append(Event{Type: typ}); err != nil {
						return err
					}
				}
				return nil
			})
			users, err := s.Users(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, u := range users {
				names = append(names, u.Name)
			}
			if want := []string{"Bob", "Zed", "_svc", "alice", "carol", "émile"}; !slices.Equal(names, want) {
				t.Errorf("Users in the order %q, want the bytes' %q", names, want)
			}
			evs, err := s.Events(ctx, EventFilter{Type: "request."})
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, e := range evs {
				types = append(types, e.Type)
			}
			if want := []string{"request.created", "request."}; !slices.Equal(types, want) {
				t.Errorf("Events of type prefix request. = %q, want %q", types, want)
			}
		})
	}
}

// TestPGTextCollationC: every TEXT column of the PostgreSQL schema compares
// by bytes, so that a migration that adds one without COLLATE "C" fails
// here rather than sorting by the database's locale.
func TestPGTextCollationC(t *testing.T) {
	s, _ := openPG(t)
	rows, err := s.read.Query(`SELECT table_name || '.' || column_name, COALESCE(collation_name, '') FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type = 'text' AND COALESCE(collation_name, '') != 'C' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var col string
		var coll sql.NullString
		if err := rows.Scan(&col, &coll); err != nil {
			t.Fatal(err)
		}
		t.Errorf("column %s has collation %q, want COLLATE \"C\" (schema_pg.go)", col, coll.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
