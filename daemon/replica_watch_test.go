package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
)

// loginAs enrols name in groups on store u and logs in through the API at
// s, returning a client with the token.
func loginAs(t *testing.T, s *serving, u, dir, name string, groups ...string) *api.Client {
	t.Helper()
	ctx := context.Background()
	signer := testkit.Signer(t)
	if err := (Layout{Dir: dir, Store: u}).EnrolUser(ctx, grant.Enrolment{Name: name, Groups: groups,
		Keys: []string{string(ssh.MarshalAuthorizedKey(signer.PublicKey()))}}); err != nil {
		t.Fatal(err)
	}
	addrs := s.d.Addrs()
	anon, err := api.NewClient("https://"+addrs.API, addrs.TLSFingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { anon.Close() })
	var res api.LoginResponse
	waitFor(t, "login of the enrolled "+name, 10*time.Second, func() bool {
		res, err = anon.Login(ctx, name, signer, time.Hour)
		return err == nil
	})
	c, err := api.NewClient("https://"+addrs.API, addrs.TLSFingerprint, res.Token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWatchProxiedToOwner follows a live session recorded by replica B
// through replica A: A forwards to B (from the registry, over the pinned
// certificate), B checks the token and records the access once, the
// stream carries what B's spool gets until the session ends; with B down
// A answers replica_unavailable. jit replicas' endpoint shows both.
func TestWatchProxiedToOwner(t *testing.T) {
	u := pgDatabase(t)
	dirs := replicaDirs(t, u, 2)
	a := serveAs(t, fastReplica(dirs[0], u, time.Now))
	b := serveAs(t, fastReplica(dirs[1], u, time.Now))
	ctx := context.Background()
	aud := loginAs(t, a, u, dirs[0], "ann", "secops")
	// B picks enrolled users up on its own beat (the change feed, not
	// this test's subject, makes that sooner).
	waitFor(t, "B knows ann", 10*time.Second, func() bool { _, ok := b.d.policy.Current().Users["ann"]; return ok })

	// A live session of B's, its growing recording in B's spool only.
	name := "2026/12/01/sess-b.cast"
	spool := filepath.Join(Layout{Dir: dirs[1]}.Recordings(), name)
	if err := os.MkdirAll(filepath.Dir(spool), 0o700); err != nil {
		t.Fatal(err)
	}
	first := `{"version": 2, "width": 80, "height": 24}` + "\n" + `[0.1, "o", "hello from B\r\n"]` + "\n"
	if err := os.WriteFile(spool, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	err := b.d.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertSession(audit.Session{ID: "sess-b", User: "alice", Host: "db1", Login: "root", StartedAt: time.Now(),
			RecordingPath: name, Replica: b.d.replica.id})
	})
	if err != nil {
		t.Fatal(err)
	}
	if x, err := aud.Session(ctx, "sess-b"); err != nil || x.Session.Replica != b.d.replica.id {
		t.Fatalf("session through A = %+v, %v; want its replica %s", x, err, b.d.replica.id)
	}
	body, err := aud.Recording(ctx, "sess-b", "watch", true)
	if err != nil {
		t.Fatalf("watch through A of B's live session: %v", err)
	}
	defer body.Close()
	got := make([]byte, len(first))
	if _, err := io.ReadFull(body, got); err != nil || string(got) != first {
		t.Fatalf("first bytes through A = %q, %v; want %q", got, err, first)
	}
	more := `[0.5, "o", "more\r\n"]` + "\n"
	f, err := os.OpenFile(spool, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(more); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := b.d.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.EndSession(audit.SessionEnd{ID: "sess-b", EndedAt: time.Now(), RecordingPath: name})
	}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(body)
	if err != nil || string(rest) != more {
		t.Fatalf("rest of the follow = %q, %v; want %q and the end", rest, err, more)
	}
	evs, err := a.d.store.Events(ctx, audit.EventFilter{Type: "recording.accessed"})
	if err != nil || len(evs) != 1 || evs[0].Actor != "ann" || evs[0].SessionID != "sess-b" {
		t.Fatalf("recording.accessed events = %+v, %v; want one, by ann", evs, err)
	}

	admin := loginAs(t, a, u, dirs[0], "root-admin", "admins")
	reps, err := admin.Replicas(ctx)
	if err != nil || len(reps) != 2 {
		t.Fatalf("replicas = %+v, %v; want two", reps, err)
	}
	holders := 0
	for _, r := range reps {
		if !r.Up || r.Version == "" || !strings.HasPrefix(r.AdvertiseURL, "https://127.0.0.1:") || r.PolicyDiffers {
			t.Errorf("replica %+v: want up, with a version, an advertised URL and the same policy", r)
		}
		if r.LeaseHolder {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("replicas %+v: %d lease holders, want 1", reps, holders)
	}

	// A registry row pointing at a server with another certificate: A
	// refuses it at the handshake, and no request reaches it.
	impostor := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the impostor got %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	defer impostor.Close()
	err = a.d.store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.Heartbeat(audit.Replica{ID: "impostor", Instance: "x", AdvertiseURL: impostor.URL}, time.Minute); err != nil {
			return err
		}
		return tx.InsertSession(audit.Session{ID: "sess-x", User: "alice", Host: "db1", StartedAt: time.Now(), RecordingPath: "2026/12/01/sess-x.cast", Replica: "impostor"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ae *api.Error
	if _, err := aud.Recording(ctx, "sess-x", "watch", true); !errors.As(err, &ae) || ae.Code != api.CodeReplicaUnavailable {
		t.Fatalf("watch proxied to a server with another certificate = %v; want %s", err, api.CodeReplicaUnavailable)
	}

	// B stops while another session of its is live: A cannot serve it.
	if err := b.d.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertSession(audit.Session{ID: "sess-b2", User: "alice", Host: "db1", StartedAt: time.Now(), RecordingPath: "2026/12/01/sess-b2.cast", Replica: b.d.replica.id})
	}); err != nil {
		t.Fatal(err)
	}
	b.stop(t)
	_, err = aud.Recording(ctx, "sess-b2", "watch", true)
	if !errors.As(err, &ae) || ae.Code != api.CodeReplicaUnavailable {
		t.Fatalf("watch of a down replica's live session = %v; want %s", err, api.CodeReplicaUnavailable)
	}
}
