package audit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// openOldPG makes a PostgreSQL database as the previous release did
// (migrations 1-10 as 584674b shipped them, before the in-place COLLATE "C"
// edit) on a database whose locale is en-US, runs before on it (writes of
// that release), then opens it with this release (migrations 11 on).
func openOldPG(t *testing.T, before ...func(t *testing.T, u string)) (*Store, string) {
	t.Helper()
	return openPGAt(t, oldPGMigrations(), before...)
}

// openPGAt is openOldPG for the schema steps given (at version len(steps)).
func openPGAt(t *testing.T, steps []string, before ...func(t *testing.T, u string)) (*Store, string) {
	t.Helper()
	pgURL(t)
	u := pgServer.Server(t).DatabaseICU(t, "en-US")
	db := rawDB(t, u)
	stmts := append([]string{}, steps...)
	stmts = append(stmts, `CREATE TABLE schema_version (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), version BIGINT NOT NULL)`,
		fmt.Sprintf(`INSERT INTO schema_version (version) VALUES (%d)`, len(steps)))
	execAll(stmts...)(t, db)
	db.Close()
	for _, f := range before {
		f(t, u)
	}
	s, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("open the old database: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}

// An upgraded database compares text as SQLite does: every TEXT column is
// COLLATE "C" (migration 14), so a type prefix selects by bytes.
func TestUpgradedPGCollation(t *testing.T) {
	s, _ := openOldPG(t)
	ctx := context.Background()
	mustDo(t, s, func(tx *Tx) error {
		for _, typ := range []string{"request.created", "Request.created", "request-x", "requestA", "request.", "request/"} {
			if _, err := tx.Append(Event{Type: typ}); err != nil {
				return err
			}
		}
		return nil
	})
	evs, err := s.Events(ctx, EventFilter{Type: "request."})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := []string{"request.created", "request."}; !slices.Equal(types, want) {
		t.Errorf("upgraded database: Events of type prefix request. = %q, want %q", types, want)
	}
	rows, err := s.read.Query(`SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type = 'text' AND COALESCE(collation_name, '') != 'C' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, c)
	}
	if len(cols) > 0 {
		t.Errorf("upgraded database: %d TEXT columns not COLLATE \"C\", e.g. %q", len(cols), cols[:min(5, len(cols))])
	}
}

// The upgraded stores work: a challenge, an SSO flow, a lease, a session with its replica.
func TestUpgradeFrom10(t *testing.T) {
	opens := map[string]func(t *testing.T) (*Store, string){
		"sqlite": func(t *testing.T) (*Store, string) {
			return openOld(t, append(append([]string{}, migrations()[:10]...), "PRAGMA user_version = 10")...)
		},
		"postgres": func(t *testing.T) (*Store, string) { return openOldPG(t) },
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			s, _ := open(t)
			now := time.Now()
			mustDo(t, s, func(tx *Tx) error {
				if err := tx.InsertSession(Session{ID: "s1", User: "u", StartedAt: now, Replica: "r1"}); err != nil {
					return err
				}
				_, err := tx.Append(Event{Type: "x"})
				return err
			})
			got, err := s.Session(context.Background(), "s1")
			if err != nil || got.Replica != "r1" {
				t.Fatalf("Session = %+v, %v", got, err)
			}
		})
	}
}

// The previous release stored 0x01 raw on PostgreSQL (it refused only
// NUL); after the upgrade (migration 14 escapes it) a refused login named
// "root\x01\x02" recorded then still reads back as it was, so the chain
// verifies and a filter on the name finds it. A database of versions 11-13
// was written escaped already, and is left so.
func TestUpgradeEscapesRawSOH(t *testing.T) {
	const user = "root\x01\x02"
	tests := []struct {
		name   string
		steps  []string
		stored string
	}{
		{name: "previous release (10), raw", steps: oldPGMigrations(), stored: user},
		{name: "this release (13), escaped", steps: pgMigrations()[:13], stored: pgEscape(user)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openPGAt(t, tc.steps, func(t *testing.T, u string) {
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				e := Event{Seq: 1, Time: at(0), Type: "login.refused", User: user}
				h, err := ChainHash(GenesisHash, e)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, `INSERT INTO events (seq, time, type, "user", prev_hash, hash) VALUES (1, $1, $2, $3, $4, $5)`,
					at(0).UnixNano(), e.Type, tc.stored, GenesisHash, h); err != nil {
					t.Fatal(err)
				}
			})
			res, err := s.Verify(context.Background())
			if err != nil || !res.OK {
				t.Errorf("Verify after the upgrade: %+v, %v", res, err)
			}
			evs, err := s.Events(context.Background(), EventFilter{User: user})
			if err != nil || len(evs) != 1 {
				t.Errorf("Events(user %q) = %d events, %v; want 1", user, len(evs), err)
			}
		})
	}
}
