package audit

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNULStored: text from outside with NUL bytes (an SSH user name
// "root\x00", an exec command) is stored on both engines, NUL as U+FFFD,
// and the chain verifies; PostgreSQL's TEXT would refuse it raw, leaving a
// refused login with no record.
func TestNULStored(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		if err := s.Append(ctx, Event{Time: at(0), Type: "session.rejected", Code: "rejected", User: "root\x00", Message: "a\x00b"}); err != nil {
			t.Fatalf("append with NUL: %v", err)
		}
		if err := s.Do(ctx, func(tx *Tx) error {
			return tx.InsertSession(Session{ID: "s1", StartedAt: at(time.Second), Command: "id\x00x", RecordingPath: "s1.cast"})
		}); err != nil {
			t.Fatalf("session with NUL: %v", err)
		}
		evs, err := s.Events(ctx, EventFilter{})
		if err != nil || len(evs) != 1 {
			t.Fatalf("events %v, %v", evs, err)
		}
		if evs[0].User != "root\uFFFD" || evs[0].Message != "a\uFFFDb" {
			t.Errorf("stored user %q message %q, want NUL as U+FFFD", evs[0].User, evs[0].Message)
		}
		ss, err := s.Session(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ss.Command, "\x00") && s.Engine() == "postgres" {
			t.Errorf("PostgreSQL row holds a NUL: %q", ss.Command)
		}
	})
}

// TestRedactURLQueryPasswords: a password given as a query parameter is
// masked too, not only the userinfo one.
func TestRedactURLQueryPasswords(t *testing.T) {
	for _, u := range []string{
		"postgres://u:secret@h/db",
		"postgres://u@h/db?password=secret",
		"postgres://u@h/db?sslmode=require&sslpassword=secret",
		"postgres://u@h/db?PASSWORD=secret",
	} {
		if got := RedactURL(u); strings.Contains(got, "secret") {
			t.Errorf("RedactURL(%q) = %q, shows the password", u, got)
		}
	}
}
