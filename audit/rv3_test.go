package audit

import (
	"context"
	"database/sql"
	"github.com/jackc/pgx/v5"
	"slices"
	"testing"
	"time"
)

// rv3: a PostgreSQL database made by the previous release (migrations 1-10
// as 584674b shipped them, before the in-place COLLATE "C" edit), on a
// database whose locale is en-US, then opened by this release (11-13).
func rv3OpenOldPG(t *testing.T) (*Store, string) {
	t.Helper()
	pgURL(t)
	u := pgServer.srv.DatabaseICU(t, "en-US")
	db := rawDB(t, u)
	stmts := append([]string{}, rv3OldPGMigrations()...)
	stmts = append(stmts, `CREATE TABLE schema_version (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), version BIGINT NOT NULL)`,
		`INSERT INTO schema_version (version) VALUES (10)`)
	execAll(stmts...)(t, db)
	db.Close()
	for _, f := range rv3BeforeUpgrade {
		f(t, u)
	}
	rv3BeforeUpgrade = nil
	s, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("open the old database: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}

func TestRV3UpgradedPGCollation(t *testing.T) {
	s, _ := rv3OpenOldPG(t)
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
func TestRV3UpgradeFrom10(t *testing.T) {
	opens := map[string]func(t *testing.T) (*Store, string){
		"sqlite": func(t *testing.T) (*Store, string) {
			return openOld(t, append(append([]string{}, migrations()[:10]...), "PRAGMA user_version = 10")...)
		},
		"postgres": rv3OpenOldPG,
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

var rv3BeforeUpgrade []func(t *testing.T, u string)

// rv3: the previous release stored 0x01 raw on PostgreSQL (it refused only
// NUL). A refused login named "root\x01\x02" recorded then reads back as
// "root\x01" after the upgrade, so the chain no longer verifies.
func TestRV3UpgradeKeepsRawSOH(t *testing.T) {
	rv3BeforeUpgrade = append(rv3BeforeUpgrade, func(t *testing.T, u string) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		e := Event{Seq: 1, Time: at(0), Type: "login.refused", User: "root\x01\x02", Data: nil}
		h, err := ChainHash(GenesisHash, e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO events (seq, time, type, "user", prev_hash, hash) VALUES (1, $1, $2, $3, $4, $5)`,
			at(0).UnixNano(), e.Type, e.User, GenesisHash, h); err != nil {
			t.Fatal(err)
		}
	})
	s, _ := rv3OpenOldPG(t)
	res, err := s.Verify(context.Background())
	if err != nil || !res.OK {
		t.Errorf("Verify after the upgrade: %+v, %v", res, err)
	}
	evs, _ := s.Events(context.Background(), EventFilter{User: "root\x01\x02"})
	if len(evs) != 1 {
		t.Errorf("Events(user root\\x01\\x02) = %d events, want 1", len(evs))
	}
}

