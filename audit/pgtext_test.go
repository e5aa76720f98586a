package audit

import (
	"cmp"
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
)

func TestPGEscape(t *testing.T) {
	tests := []struct {
		name, in, stored string
	}{
		{name: "plain", in: "alice", stored: "alice"},
		{name: "NUL", in: "root\x00x", stored: "root\x01\x01x"},
		{name: "the escape byte", in: "a\x01b", stored: "a\x01\x02b"},
		{name: "both, back to back", in: "\x00\x01\x00\x01", stored: "\x01\x01\x01\x02\x01\x01\x01\x02"},
		{name: "looks escaped already", in: "\x01\x01", stored: "\x01\x02\x01\x02"},
		{name: "UTF-8 around", in: "é\x00ü", stored: "é\x01\x01ü"},
		{name: "empty", in: "", stored: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := pgEscape(tc.in)
			if got != tc.stored {
				t.Errorf("pgEscape(%q) = %q, want %q", tc.in, got, tc.stored)
			}
			if strings.IndexByte(got, 0) >= 0 {
				t.Errorf("pgEscape(%q) = %q holds a NUL", tc.in, got)
			}
			if back := pgUnescape(got); back != tc.in {
				t.Errorf("pgUnescape(%q) = %q, want %q", got, back, tc.in)
			}
		})
	}
}

// TestPGNamedStringArg: a value of a named string type is text to the
// driver too, escaped as a string is.
func TestPGNamedStringArg(t *testing.T) {
	s, _ := openPG(t)
	type name string
	var got string
	if err := s.read.QueryRow("SELECT ? || ''", name("a\x00b")).Scan(&got); err != nil || got != "a\x00b" {
		t.Fatalf("a named string with a NUL came back as %q, %v", got, err)
	}
}

// TestNULFromOutside records a refused login whose user name carries a NUL
// (and the escape byte), as grant records one, and reads it back byte for
// byte, by a filter on that very name too, on both engines.
func TestNULFromOutside(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		ctx := context.Background()
		s, _ := openTest(t)
		want := Event{Time: at(0), Type: "login.failed", Code: "unknown_key", User: "root\x00x",
			ClientAddr: "127.0.0.1:2222", Message: "exec \x00\x01 id", Data: map[string]string{"command\x00": "a\x00b\x01"}}
		mustDo(t, s, func(tx *Tx) error { _, err := tx.Append(Event{Type: "other", User: "root"}); return err })
		var stored Event
		mustDo(t, s, func(tx *Tx) error {
			var err error
			stored, err = tx.Append(want)
			return err
		})
		got, err := s.Events(ctx, EventFilter{User: "root\x00x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], stored) || got[0].User != want.User || got[0].Data["command\x00"] != "a\x00b\x01" {
			t.Fatalf("Events(user root\\x00x) = %#v, want only %#v", got, stored)
		}
		if vr, err := s.Verify(ctx, VerifyOptions{}); err != nil || !vr.OK || vr.Head != stored.Hash {
			t.Errorf("Verify = %+v, %v; want ok at %s", vr, err, stored.Hash)
		}
	})
}

// FuzzPGText stores pairs of arbitrary strings in a PostgreSQL store (the
// seeds under testdata/fuzz/FuzzPGText run with every go test) and checks
// that they come back as stored on SQLite: the same bytes (invalid UTF-8
// made valid first, on both engines), found by equality, in byte order.
func FuzzPGText(f *testing.F) {
	s, _ := openPG(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, a, b string) {
		if back := pgUnescape(pgEscape(a)); back != a {
			t.Fatalf("pgUnescape(pgEscape(%q)) = %q", a, back)
		}
		if got, want := cmp.Compare(pgEscape(a), pgEscape(b)), cmp.Compare(a, b); got != want {
			t.Fatalf("escaping changes the order of %q and %q: %d, want %d", a, b, got, want)
		}
		var ea, eb Event
		mustDo(t, s, func(tx *Tx) error {
			var err error
			if ea, err = tx.Append(Event{Type: "fuzz.a", User: a, Message: b, Data: map[string]string{a: b}}); err != nil {
				return err
			}
			eb, err = tx.Append(Event{Type: "fuzz.b", User: b, Message: a})
			return err
		})
		if ea.User != clean(a) || ea.Message != clean(b) {
			t.Fatalf("Append changed %q, %q to %q, %q", a, b, ea.User, ea.Message)
		}
		got, err := s.Events(ctx, EventFilter{User: ea.User, AfterSeq: ea.Seq - 1})
		if err != nil {
			t.Fatal(err)
		}
		want := []Event{ea}
		if ea.User == eb.User || ea.User == "" { // an empty filter filters nothing
			want = append(want, eb)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Events(user %q) = %#v, want %#v", ea.User, got, want)
		}
		var less bool
		if err := s.read.QueryRowContext(ctx, `SELECT (SELECT "user" FROM events WHERE seq = ?) < (SELECT "user" FROM events WHERE seq = ?) COLLATE "C"`,
			ea.Seq, eb.Seq).Scan(&less); err != nil {
			t.Fatal(err)
		}
		if less != (ea.User < eb.User) {
			t.Fatalf("PostgreSQL orders %q and %q otherwise than their bytes", ea.User, eb.User)
		}
	})
}

// What a driver.Valuer (sql.NullString) or a pointer binds on PostgreSQL
// is escaped like a plain string: NUL is stored, and a raw "\x01\x01"
// does not come back as NUL.
func TestPGEscapesValuerAndPointer(t *testing.T) {
	s, _ := openPG(t)
	str := func(v string) *string { return &v }
	tests := []struct {
		name string
		arg  any
		want sql.NullString
	}{
		{name: "NullString with NUL", arg: sql.NullString{String: "a\x00b", Valid: true}, want: sql.NullString{String: "a\x00b", Valid: true}},
		{name: "NullString looking escaped", arg: sql.NullString{String: "a\x01\x01", Valid: true}, want: sql.NullString{String: "a\x01\x01", Valid: true}},
		{name: "NULL NullString", arg: sql.NullString{}, want: sql.NullString{}},
		{name: "pointer to a string with NUL", arg: str("root\x00\x01"), want: sql.NullString{String: "root\x00\x01", Valid: true}},
		{name: "nil pointer", arg: (*string)(nil), want: sql.NullString{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got sql.NullString
			if err := s.read.QueryRow("SELECT CAST(? AS TEXT)", tc.arg).Scan(&got); err != nil || got != tc.want {
				t.Errorf("bound %#v, read back %#v, %v; want %#v", tc.arg, got, err, tc.want)
			}
		})
	}
}
