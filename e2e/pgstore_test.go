package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jitssh/jitssh/internal/pgtest"
)

// startPostgres starts a PostgreSQL of the test's own, stopped at its end.
func startPostgres(t *testing.T) *pgtest.Server {
	t.Helper()
	srv, err := pgtest.Start()
	pgtest.Need(t, srv, err)
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// pgCount is the number of rows of table in the database at url.
func pgCount(t *testing.T, url, table string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIssue12PostgresStore runs jitd serve --store postgres:// with a real
// sshd target: login, a session through the bastion, jit audit verify; then
// PostgreSQL stopped under the running daemon: jit answers that the audit
// store is unavailable and nothing runs on the target; and once it is back
// the same daemon serves again and the chain verifies.
func TestIssue12PostgresStore(t *testing.T) {
	t.Parallel()
	srv := startPostgres(t)
	url := srv.Database(t)
	w := newSecWorldStopped(t)
	out, err := exec.Command(bin(t, "jitd"), "migrate", "--data", w.d.Data, "--store", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "up to date") {
		t.Fatalf("jitd migrate --store: %v\n%s", err, out)
	}
	w.serve(t, "--store", url)
	w.loginAll(t)
	r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "check the disk", "--", "echo hello-pg").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hello-pg") {
		t.Fatalf("jit ssh through the bastion on PostgreSQL: %v", r)
	}
	s := secSessionWith(t, w.auditor, "hello-pg", sessionWait)
	if len(s.RecordingSHA256) != 64 {
		t.Errorf("session %+v has no recording digest", s)
	}
	if v, vr := secVerify(t, w.auditor); vr.Code != 0 || !v.OK || v.Recordings < 1 {
		t.Fatalf("jit audit verify on PostgreSQL: %+v\n%v", v, vr)
	}
	if n := pgCount(t, url, "sessions"); n != 1 {
		t.Errorf("PostgreSQL holds %d sessions, want the 1 made", n)
	}

	if err := srv.Halt(); err != nil {
		t.Fatal(err)
	}
	r = start(t, w.alice, "ssh", w.login+"@db1", "--reason", "while the store is down", "--", "echo ran-while-down").wait(t, commandTimeout)
	// The certificate of the first session is still valid, so this is the
	// bastion refusing a new session it cannot record.
	if r.Code == 0 || strings.Contains(r.Stdout, "ran-while-down") || !strings.Contains(w.d.log.String(), "audit_unavailable") {
		t.Errorf("jit ssh with PostgreSQL down: %v; want the bastion to refuse it as audit_unavailable", r)
	}
	if _, stderr, code := run(t, w.bob, "ssh", w.login+"@db1", "--reason", "a new request", "--", "true"); code == 0 || !strings.Contains(stderr, "audit store") {
		t.Errorf("a new request with PostgreSQL down: exit %d, %s; want audit_unavailable", code, stderr)
	}
	if _, stderr, code := run(t, w.auditor, "audit", "verify"); code == 0 || !strings.Contains(stderr, "audit") {
		t.Errorf("jit audit verify with PostgreSQL down: exit %d, %s", code, stderr)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	r = start(t, w.alice, "ssh", w.login+"@db1", "--reason", "the store is back", "--", "echo after-pg").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "after-pg") {
		t.Fatalf("jit ssh once PostgreSQL is back: %v", r)
	}
	secSessionWith(t, w.auditor, "after-pg", sessionWait)
	if v, vr := secVerify(t, w.auditor); vr.Code != 0 || !v.OK || v.Recordings < 2 {
		t.Fatalf("jit audit verify after PostgreSQL came back: %+v\n%v", v, vr)
	}
}

// TestIssue12CopyFromSQLite moves a used SQLite data directory into
// PostgreSQL with jitd store copy: jit audit verify passes before and after,
// the same chain head, logins and recordings carry over, and a second copy
// into the now non-empty database is refused.
func TestIssue12CopyFromSQLite(t *testing.T) {
	t.Parallel()
	srv := startPostgres(t)
	url := srv.Database(t)
	w := newSecWorld(t)
	r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "before the move", "--", "echo before-move").wait(t, commandTimeout)
	if r.Code != 0 {
		t.Fatalf("jit ssh: %v", r)
	}
	s := secSessionWith(t, w.auditor, "before-move", sessionWait)
	// An SSH user name with a NUL, refused and recorded: PostgreSQL's TEXT
	// cannot hold it as it is, the copy and the store escape it.
	stranger := newEngineer(t, "stranger")
	if err := bastionDial(t, w, "u\x00before@db1", loadSigner(t, stranger.Key, "")); err == nil {
		t.Fatal("the bastion let a plain key in")
	}
	before, vr := secVerify(t, w.auditor)
	if vr.Code != 0 || !before.OK {
		t.Fatalf("jit audit verify before the move: %+v\n%v", before, vr)
	}
	w.d.terminate(t)
	out, err := exec.Command(bin(t, "jitd"), "store", "copy", "--from", w.d.Data, "--to", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified:") {
		t.Fatalf("jitd store copy: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin(t, "jitd"), "store", "copy", "--from", w.d.Data, "--to", url).CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Errorf("a second jitd store copy into the same database: %v\n%s; want a refusal", err, out)
	}
	if n := pgCount(t, url, "tokens"); n == 0 {
		t.Errorf("no login token was copied")
	}
	w.serve(t, "--store", url)
	w.loginAll(t) // the API listens on a new port
	after, vr := secVerify(t, w.auditor)
	if vr.Code != 0 || !after.OK || after.Events < before.Events || after.Recordings != before.Recordings {
		t.Fatalf("jit audit verify after the move: %+v, before %+v\n%v", after, before, vr)
	}
	if err := bastionDial(t, w, "u\x00after@db1", loadSigner(t, stranger.Key, "")); err == nil {
		t.Fatal("the bastion let a plain key in")
	}
	evs := auditList(t, w.auditor)
	for _, user := range []string{"u\x00before@db1", "u\x00after@db1"} {
		if _, ok := findEvent(evs, "session.rejected", func(ev auditEvent) bool { return ev.User == user }); !ok {
			t.Errorf("on PostgreSQL, no session.rejected event with the exact user %q", user)
		}
	}
	if text := mustRun(t, w.auditor, "sessions", "export", s.ID, "--format", "text"); !strings.Contains(text, "before-move") {
		t.Errorf("the recording of %s after the move lacks its output:\n%s", s.ID, text)
	}
	r = start(t, w.alice, "ssh", w.login+"@db1", "--reason", "after the move", "--", "echo after-move").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "after-move") {
		t.Fatalf("jit ssh after the move: %v", r)
	}
}
