package audit

import (
	"cmp"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jitssh/jitssh/internal/testkit"
)

// fillStore writes a little of everything into s: events (with a serial
// above 2^63 and nanosecond times), a request and its approvals, a
// certificate (revoked), sessions with recordings and indexed text, a signed
// checkpoint.
func fillStore(t *testing.T, s *Store) {
	t.Helper()
	appendN(t, s, 5)
	mustDo(t, s, func(tx *Tx) error {
		if err := tx.InsertRequest(pendingRequest("r1")); err != nil {
			return err
		}
		for _, who := range []string{"carol", "bob"} {
			if err := tx.AddApproval(Approval{RequestID: "r1", Approver: who, Decision: "approve", Time: at(time.Second)}); err != nil {
				return err
			}
		}
		if err := tx.InsertCertificate(userCert(1<<63 + 5)); err != nil {
			return err
		}
		if err := tx.RevokeCertificate(1<<63+5, at(2*time.Minute), "lost laptop"); err != nil {
			return err
		}
		if _, err := tx.Append(Event{Type: "cert.issued", Serial: 1<<63 + 5, Time: at(time.Minute), User: "alice", Data: map[string]string{"a": "<&>"}}); err != nil {
			return err
		}
		// Text from outside that PostgreSQL's TEXT refuses as it is.
		_, err := tx.Append(Event{Type: "login.failed", Time: at(time.Minute), User: "root\x00x", Message: "\x01\x00"})
		return err
	})
	mustDo(t, s, func(tx *Tx) error {
		return tx.IndexText([]TextLine{{SessionID: "s1", Offset: time.Second, Kind: "o", Text: "Hello World"},
			{SessionID: "s1", Offset: 2 * time.Second, Kind: "i", Text: "rm -rf /tmp/x"}})
	})
	if _, err := s.SignCheckpoint(context.Background(), testkit.Signer(t), at(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	from, _ := openTest(t)
	fillStore(t, from)
	fsys := recordedSessions(t, from)
	to, _ := openPG(t)
	res, err := Copy(ctx, from, to)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	want, err := from.Verify(ctx, VerifyOptions{Recordings: Recordings{Dir: recDir, FS: fsys}})
	if err != nil || !want.OK {
		t.Fatalf("Verify of the source = %+v, %v", want, err)
	}
	got, err := to.Verify(ctx, VerifyOptions{Recordings: Recordings{Dir: recDir, FS: fsys}})
	if err != nil || !got.OK || got.Head != want.Head || got.Events != want.Events || got.Checkpoints != 1 || got.Recordings != 2 {
		t.Fatalf("Verify of the copy = %+v, %v; want %+v", got, err, want)
	}
	if res.Head != want.Head || res.Events != want.Events {
		t.Errorf("Copy = %+v, want head %s of %d events", res, want.Head, want.Events)
	}
	for _, read := range []func(*Store) (any, error){
		func(s *Store) (any, error) { return s.Events(ctx, EventFilter{}) },
		func(s *Store) (any, error) { return s.Events(ctx, EventFilter{User: "root\x00x"}) },
		func(s *Store) (any, error) { return s.Approvals(ctx, "r1") },
		func(s *Store) (any, error) { return s.Certificates(ctx, CertificateFilter{}) },
		func(s *Store) (any, error) { return s.Sessions(ctx, SessionFilter{}) },
		func(s *Store) (any, error) { return s.Search(ctx, SearchQuery{Text: "world"}) },
		func(s *Store) (any, error) { return s.Search(ctx, SearchQuery{Text: "RF /TM"}) },
	} {
		a, err := read(from)
		if err != nil {
			t.Fatal(err)
		}
		b, err := read(to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) || reflect.ValueOf(a).Len() == 0 {
			t.Errorf("the copy reads %+v, the source %+v", b, a)
		}
	}
	// The copy's identity columns go on after the copied rows.
	mustDo(t, to, func(tx *Tx) error {
		return tx.IndexText([]TextLine{{SessionID: "s9", Kind: "o", Text: "after the copy"}})
	})
	if _, err := Copy(ctx, from, to); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Copy into a non-empty store: error = %v, want a refusal", err)
	}

}

// TestCopyChecksTheSource makes the target lose or change rows on the way
// in (a trigger that skips some or alters a value, as a rule or a bad
// extension could) and checks that Copy refuses to commit, naming what
// differs from the source. A copy that lost the newest events would still
// verify on its own, and one whose certificates.revoked_at changed (a
// value outside the chain) too.
func TestCopyChecksTheSource(t *testing.T) {
	tests := []struct {
		name, table, when, want string
		then                    string // what the trigger does when; RETURN NULL (skip the row) if empty
	}{
		{name: "lost approvals", table: "approvals", when: "NEW.approver = 'bob'", want: "table approvals has 1 rows, the source 2"},
		{name: "lost newest events", table: "events", when: "NEW.seq > 3", want: "the chain has 3 events, the source 7"},
		{name: "revocation undone", table: "certificates", when: "true", then: "NEW.revoked_at := 0; NEW.revoke_reason := '';",
			want: "table certificates holds other values than the source sent"},
		{name: "text changed", table: "approvals", when: "NEW.approver = 'bob'", then: "NEW.approver := 'bob2';",
			want: "table approvals holds other values than the source sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			from, _ := openTest(t)
			fillStore(t, from)
			to, u := openPG(t)
			conn, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			then := cmp.Or(tc.then, "RETURN NULL;")
			if _, err := conn.Exec(ctx, `CREATE FUNCTION lose() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF `+tc.when+` THEN `+then+` END IF; RETURN NEW; END; $$;
				CREATE TRIGGER lose BEFORE INSERT ON `+tc.table+` FOR EACH ROW EXECUTE FUNCTION lose()`); err != nil {
				t.Fatal(err)
			}
			_, err = Copy(ctx, from, to)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Copy into a lossy target: error = %v, want one saying %q", err, tc.want)
			}
			var n int64
			if err := conn.QueryRow(ctx, "SELECT COUNT(*) FROM "+tc.table).Scan(&n); err != nil || n != 0 {
				t.Errorf("after the refused copy %s holds %d rows (%v), want none", tc.table, n, err)
			}
		})
	}
}

// A SQLite store holding text that is not UTF-8 (a session's exec command
// recorded before InsertSession cleaned it) is copied with U+FFFD for the
// bad bytes, where PostgreSQL's COPY refused it, and the copy verifies.
func TestCopyNonUTF8Text(t *testing.T) {
	ctx := context.Background()
	from, _ := openTest(t)
	fillStore(t, from)
	mustDo(t, from, func(tx *Tx) error {
		if err := tx.InsertSession(Session{ID: "s9", User: "alice", Login: "root", StartedAt: at(0)}); err != nil {
			return err
		}
		if _, err := tx.tx.Exec("UPDATE sessions SET command = ? WHERE id = 's9'", "exec cat caf\xe9.txt"); err != nil {
			return err
		}
		return tx.EndSession(SessionEnd{ID: "s9", EndedAt: at(time.Second), EndReason: "exit"})
	})
	to, _ := openPG(t)
	if _, err := Copy(ctx, from, to); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	got, err := to.Session(ctx, "s9")
	if err != nil || got.Command != "exec cat caf\uFFFD.txt" {
		t.Errorf("copied session: command %q, %v", got.Command, err)
	}
	if res, err := to.Verify(ctx, VerifyOptions{}); err != nil || !res.OK {
		t.Errorf("Verify of the copy = %+v, %v", res, err)
	}
}
