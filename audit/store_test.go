package audit

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		path    func(t *testing.T, dir string) string // returns the path to open
		wantErr string
	}{
		{
			name:    "empty path",
			path:    func(*testing.T, string) string { return "" },
			wantErr: "path is empty",
		},
		{
			name:    "missing directory",
			path:    func(_ *testing.T, dir string) string { return filepath.Join(dir, "nope", "jitssh.db") },
			wantErr: "no such file or directory",
		},
		{
			name: "parent is a file",
			path: func(t *testing.T, dir string) string {
				writeFile(t, filepath.Join(dir, "file"), "x")
				return filepath.Join(dir, "file", "jitssh.db")
			},
			wantErr: "not a directory",
		},
		{
			name:    "path is a directory",
			path:    func(_ *testing.T, dir string) string { return dir },
			wantErr: "not a regular file",
		},
		{
			name: "not a database",
			path: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "jitssh.db")
				writeFile(t, p, strings.Repeat("this is not SQLite\n", 100))
				return p
			},
			wantErr: "file is not a database",
		},
		{
			name: "read-only directory",
			path: func(t *testing.T, dir string) string {
				ro := filepath.Join(dir, "ro")
				if err := os.Mkdir(ro, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(ro, 0o700) })
				skipIfWritable(t, ro)
				return filepath.Join(ro, "jitssh.db")
			},
			wantErr: "permission denied",
		},
		{
			name: "read-only directory with existing database",
			path: func(t *testing.T, dir string) string {
				ro := filepath.Join(dir, "ro")
				if err := os.Mkdir(ro, 0o700); err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(ro, "jitssh.db")
				s, err := Open(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(ro, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(ro, 0o700) })
				skipIfWritable(t, ro)
				return p
			},
			wantErr: "must be writable for the WAL files",
		},
		{
			name: "read-only file system",
			path: func(t *testing.T, _ string) string {
				if runtime.GOOS != "linux" {
					t.Skip("needs /sys")
				}
				skipIfWritable(t, "/sys")
				return "/sys/jitssh.db"
			},
			wantErr: "database file must be writable",
		},
		{
			name: "schema newer than the binary",
			path: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "jitssh.db")
				db := rawDB(t, p)
				if _, err := db.Exec("PRAGMA user_version = 999"); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: "schema version 999 is newer than this binary's " + fmt.Sprint(len(migrations())),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path(t, t.TempDir())
			s, err := Open(path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want error containing %q", path, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "open audit store") {
				t.Fatalf("Open(%q) error = %q, want it to start with \"open audit store\" and contain %q", path, err, tt.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// skipIfWritable skips when dir is writable anyway (running as root).
func skipIfWritable(t *testing.T, dir string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "probe")
	if err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skipf("%s is writable for this user (root?)", dir)
	}
}

// rawDB opens the database file directly, as an attacker or another tool
// would, bypassing the store.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	var db *sql.DB
	if IsPostgresURL(path) {
		cfg, err := pgx.ParseConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		db = sql.OpenDB(pgConnector{inner: stdlib.GetConnector(*cfg), rb: &rebinder{cache: map[string]string{}}})
	} else {
		var err error
		if db, err = sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openOld makes the database file an older jitssh left by running stmts on
// a fresh file, then opens the store on it (which migrates it) and returns
// the store, closed when the test ends, and the file's path.
func openOld(t *testing.T, stmts ...string) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jitssh.db")
	db := rawDB(t, path)
	execAll(stmts...)(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatalf("open the old file: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestOpenSetsUpDatabase(t *testing.T) {
	s, path := openTest(t)
	db := rawDB(t, path)
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{name: "journal mode", query: "PRAGMA journal_mode", want: "wal"},
		{name: "schema version", query: "PRAGMA user_version", want: fmt.Sprint(len(migrations()))},
		{name: "events table", query: "SELECT name FROM sqlite_master WHERE name = 'events'", want: "events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := db.QueryRow(tt.query).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode = %v, want 0600", perm)
	}
	// The store's own connections are configured for durability.
	for name, want := range map[string]int{"synchronous": 2, "foreign_keys": 1, "temp_store": 2} {
		var got int
		if err := s.write.QueryRow("PRAGMA " + name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("write connection PRAGMA %s = %d, want %d", name, got, want)
		}
	}
	if _, err := s.read.Exec("INSERT INTO meta (key, value) VALUES ('x', 1)"); err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestReopenKeepsCommittedData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jitssh.db")
	for round := 1; round <= 3; round++ {
		s, err := Open(path)
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		mustDo(t, s, func(tx *Tx) error {
			_, err := tx.Append(Event{Type: "test", Time: at(time.Duration(round)), Message: fmt.Sprint(round)})
			return err
		})
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.Events(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events after reopening, want 3", len(evs))
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) || e.Message != fmt.Sprint(i+1) {
			t.Errorf("event %d = seq %d message %q, want seq %d message %q", i, e.Seq, e.Message, i+1, fmt.Sprint(i+1))
		}
	}
	assertVerified(t, s, 3)
}

// TestCrashKeepsCommittedData copies the database and its WAL while the
// store is still open (no Close, no checkpoint): what a crash leaves behind.
func TestCrashKeepsCommittedData(t *testing.T) {
	s, path := openTest(t)
	const n = 50
	for i := range n {
		mustDo(t, s, func(tx *Tx) error {
			_, err := tx.Append(Event{Type: "test", Time: at(time.Duration(i))})
			return err
		})
	}
	crashed := filepath.Join(t.TempDir(), "jitssh.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, path+suffix, crashed+suffix)
	}
	s2, err := Open(crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertVerified(t, s2, n)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func assertVerified(t *testing.T, s *Store, events int64) {
	t.Helper()
	res, err := s.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.OK || res.Events != events {
		t.Fatalf("Verify = %+v, want OK with %d events", res, events)
	}
}

func TestOpenOddPaths(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{name: "space", file: "jit ssh.db"},
		{name: "query characters", file: "a?mode=memory&b=1.db"},
		{name: "fragment and percent", file: "a#b%20c.db"},
		{name: "non-ASCII", file: "jitssh-ü.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			mustDo(t, s, appendMsg("x", nil))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if len(names) != 1 || names[0] != tt.file {
				t.Fatalf("directory holds %q, want only %q", names, tt.file)
			}
			s, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			assertVerified(t, s, 1)
		})
	}
}

// TestTwoProcessesShareTheChain models `jitd user add` writing beside a
// running jitd: two Stores on one file append in turns and the chain stays
// one unbroken line.
func TestTwoProcessesShareTheChain(t *testing.T) {
	a, path := openTest(t)
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 6; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		mustDo(t, s, func(tx *Tx) error {
			_, err := tx.Append(Event{Time: at(time.Duration(i) * time.Second), Type: "test", Code: "turn"})
			return err
		})
	}
	res, err := a.Verify(context.Background())
	if err != nil || !res.OK || res.Events != 6 {
		t.Fatalf("Verify = %+v, %v; want 6 events in one chain", res, err)
	}
}
