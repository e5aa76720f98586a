package apiserver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sessionlog"
)

// addSession stores a live session of user with a recording file.
func addSession(t *testing.T, e *env, id, user string) {
	t.Helper()
	path := filepath.Join(e.recordings, id+".cast")
	if err := os.WriteFile(path, []byte(`{"version":2,"width":80,"height":24}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := e.store.Do(context.Background(), func(tx *audit.Tx) error {
		return tx.InsertSession(audit.Session{ID: id, User: user, Host: "web1", Login: "deploy", StartedAt: e.clock.Now(), RecordingPath: path})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSessionAccess checks who sees which sessions and that every read of a
// recording is recorded once, with its purpose, and a refused one not at all.
func TestSessionAccess(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	addSession(t, e, "s_alice", "alice")
	addSession(t, e, "s_bob", "bob")
	// A row edited to name a file outside the recordings directory: the
	// API must refuse it by name rather than serve whatever is there.
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("not a recording\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertSession(audit.Session{ID: "s_outside", User: "bob", Host: "web1", Login: "deploy", StartedAt: e.clock.Now(), RecordingPath: outside})
	}); err != nil {
		t.Fatal(err)
	}
	alice, sec := e.client("alice"), e.client("sec")
	tests := []struct {
		name string
		do   func() error
		code string
		// accessed is the code of the recording.accessed event it must leave.
		accessed string
		// session is the session it reads; empty means s_bob.
		session string
	}{
		{name: "own sessions", do: func() error {
			ss, err := alice.Sessions(ctx, api.SessionQuery{})
			if err == nil && (len(ss) != 1 || ss[0].ID != "s_alice") {
				t.Errorf("alice sees %+v, want only s_alice", ss)
			}
			return err
		}},
		{name: "another user's sessions", do: func() error { _, err := alice.Sessions(ctx, api.SessionQuery{User: "bob"}); return err }, code: api.CodeNotAuditor},
		{name: "another user's session", do: func() error { _, err := alice.Session(ctx, "s_bob"); return err }, code: api.CodeNotAuditor},
		{name: "auditor sees all", do: func() error {
			ss, err := sec.Sessions(ctx, api.SessionQuery{})
			if err == nil && len(ss) != 3 {
				t.Errorf("auditor sees %d sessions, want 3", len(ss))
			}
			return err
		}},
		{name: "unknown session", do: func() error { _, err := sec.Session(ctx, "s_nosuch"); return err }, code: api.CodeNotFound},
		{name: "recording as a user", do: func() error { _, err := alice.Recording(ctx, "s_alice", api.PurposeReplay, false); return err }, code: api.CodeNotAuditor},
		{name: "recording with a bad purpose", do: func() error { _, err := sec.Recording(ctx, "s_bob", "curiosity", false); return err }, code: api.CodeBadPurpose},
		{name: "recording export", do: func() error {
			rc, err := sec.Recording(ctx, "s_bob", api.PurposeExport, false)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err == nil && len(b) == 0 {
				t.Error("empty recording")
			}
			return err
		}, accessed: api.PurposeExport},
		{name: "recording outside the recordings directory", do: func() error {
			_, err := sec.Recording(ctx, "s_outside", api.PurposeReplay, false)
			if err != nil && !strings.Contains(err.Error(), "outside the recordings directory") {
				t.Errorf("err = %v, want it to say the path is outside the recordings directory", err)
			}
			return err
		}, code: api.CodeRecordingMissing, accessed: api.PurposeReplay, session: "s_outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq(e)
			err := tc.do()
			var ae *api.Error
			if tc.code == "" && err != nil || tc.code != "" && (!errors.As(err, &ae) || ae.Code != tc.code) {
				t.Fatalf("err = %v, want code %q", err, tc.code)
			}
			evs := e.events(audit.EventFilter{Type: "recording.accessed", AfterSeq: before})
			session := tc.session
			if session == "" {
				session = "s_bob"
			}
			switch {
			case tc.accessed == "" && len(evs) != 0:
				t.Errorf("recording.accessed recorded without a read: %+v", evs)
			case tc.accessed != "" && (len(evs) != 1 || evs[0].Code != tc.accessed || evs[0].Actor != "sec" || evs[0].SessionID != session):
				t.Errorf("recording.accessed events = %+v, want one %s by sec", evs, tc.accessed)
			}
		})
	}
}

// TestRecordingServedAsStored: a compressed recording is served byte for
// byte as it is on disk (its first bytes, read to tell the format, are not
// lost or sent twice), as is a plain one.
func TestRecordingServedAsStored(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	for _, plain := range []bool{false, true} {
		id := "s_zstd"
		if plain {
			id = "s_plain"
		}
		path := filepath.Join(e.recordings, id+".cast.zst")
		w, err := sessionlog.Create(path, sessionlog.Header{Width: 80, Height: 24}, sessionlog.WriterOptions{Uncompressed: plain})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Output([]byte("hello\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.store.Do(ctx, func(tx *audit.Tx) error {
			return tx.InsertSession(audit.Session{ID: id, User: "bob", Host: "web1", Login: "deploy", StartedAt: e.clock.Now(), RecordingPath: path})
		}); err != nil {
			t.Fatal(err)
		}
		rc, err := e.client("sec").Recording(ctx, id, api.PurposeExport, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want, _ := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: served %d bytes (%v), want the %d stored", id, len(got), err, len(want))
		}
		if sessionlog.IsCompressed(got) == plain {
			t.Errorf("%s: compressed = %v", id, !plain)
		}
	}
}
