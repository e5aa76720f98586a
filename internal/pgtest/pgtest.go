// Package pgtest runs a real PostgreSQL 15 (Debian's postgresql-15) for
// tests: one throwaway cluster per test package, made by initdb in a
// temporary directory and served by pg_ctl on 127.0.0.1 and a free port, with
// a fresh database per test. It never touches the machine's own clusters or
// /etc/postgresql. As root (CI) the server runs as the unprivileged user
// postgres, which Debian's package creates, through runuser.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian's postgresql-15 puts initdb and pg_ctl.
const BinDir = "/usr/lib/postgresql/15/bin"

// superuser is the cluster's superuser, whatever OS user runs it.
const superuser = "jitssh"

// ErrMissing means PostgreSQL 15 is not installed (make deps installs it).
var ErrMissing = errors.New("pgtest: PostgreSQL 15 is not installed (" + BinDir + "/initdb); run make deps")

// Server is a running throwaway cluster.
type Server struct {
	dir   string // removed by Stop
	data  string
	port  int
	runAs string // OS user the server runs as, "" for the current one
	next  atomic.Int64
}

// Start makes and starts a cluster in a new temporary directory. It returns
// ErrMissing when PostgreSQL 15 is not installed.
func Start() (*Server, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		return nil, ErrMissing
	}
	dir, err := os.MkdirTemp("", "jitssh-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, data: filepath.Join(dir, "data")}
	if err := s.start(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		s.runAs = "postgres"
		u, err := user.Lookup(s.runAs)
		if err != nil {
			return fmt.Errorf("pgtest: running as root needs the user postgres (from the postgresql-15 package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	if out, err := s.run("initdb", "-D", s.data, "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return s.Resume()
}

// Resume starts the server again after Halt (Start already started it), on
// the same port with the same data.
func (s *Server) Resume() error {
	// Only TCP on loopback, the socket in our own directory; fsync stays
	// on, as the audit store's durability is what is under test.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=on -c max_connections=200", s.port, s.dir)
	if out, err := s.run("pg_ctl", "-D", s.data, "-l", filepath.Join(s.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// Halt stops the server immediately (as a crash would: no checkpoint, open
// connections cut), keeping its data for Resume: a test of what clients
// do while the database is down.
func (s *Server) Halt() error {
	if out, err := s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

func (s *Server) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(BinDir, tool)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the server (fast shutdown) and removes its directory.
func (s *Server) Stop() error {
	var err error
	if _, serr := os.Stat(filepath.Join(s.data, "postmaster.pid")); serr == nil {
		if out, cerr := s.run("pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "60", "stop"); cerr != nil {
			err = fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", cerr, out)
		}
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

// URL is the URL of database name on this server.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, s.port, name)
}

// Port is the TCP port the server listens on at 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Database creates a fresh, empty database (from template0) for t and
// returns its URL; it is dropped when t ends, after t's other cleanups
// registered later (a store opened on it is closed first).
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	return s.database(t, "")
}

// DatabaseICU is Database with the ICU collation icuLocale (such as
// "en-US") as the database's default, whatever locales the machine has: a
// store whose order and case folding must not depend on it.
func (s *Server) DatabaseICU(t testing.TB, icuLocale string) string {
	t.Helper()
	for _, c := range icuLocale {
		if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			t.Fatalf("pgtest: ICU locale %q: want letters, digits, - and _", icuLocale)
		}
	}
	return s.database(t, fmt.Sprintf(" LOCALE_PROVIDER icu ICU_LOCALE '%s'", icuLocale))
}

func (s *Server) database(t testing.TB, opts string) string {
	t.Helper()
	name := fmt.Sprintf("t%d", s.next.Add(1))
	if err := s.exec(fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'%s", name, opts)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := s.exec(fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", name)); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// exec runs one statement as the superuser in the postgres database.
func (s *Server) exec(stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// Need fails t when s is nil because PostgreSQL is missing and CI=true, and
// skips it otherwise; startErr is what Start returned.
func Need(t testing.TB, s *Server, startErr error) {
	t.Helper()
	if s != nil {
		return
	}
	if os.Getenv("CI") == "true" || !errors.Is(startErr, ErrMissing) {
		t.Fatalf("PostgreSQL is needed: %v", startErr)
	}
	t.Skipf("skipped: %v", startErr)
}

// CPU is the CPU time (user and system) the server has used so far: the
// postmaster's own and its reaped children's, and its live children's
// (backends, the WAL writer, the checkpointer), read from /proc. A
// benchmark reports PostgreSQL's CPU per operation from two readings.
func (s *Server) CPU() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: cpu: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("pgtest: cpu: postmaster.pid starts with %q", first)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("pgtest: cpu: %w", err)
	}
	var ticks int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, own, children, ok := procTicks(pid)
		switch {
		case !ok:
		case pid == pm:
			ticks += own + children
		case ppid == pm:
			ticks += own
		}
	}
	// USER_HZ is 100 on Linux for every architecture Go supports here.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procTicks reads a process's parent, its own utime+stime and its reaped
// children's cutime+cstime from /proc/PID/stat.
func procTicks(pid int) (ppid int, own, children int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return int(n(4)), n(14) + n(15), n(16) + n(17), true
}

// Shared is one PostgreSQL server for a whole test binary: started by the
// first test that asks for it, stopped by the package's TestMain through
// Stop. The zero value is ready to use; it is safe for concurrent use.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Server returns the shared server, starting it at the first call; t is
// skipped (failed with CI=true) when PostgreSQL cannot run here.
func (s *Shared) Server(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() { s.srv, s.err = Start() })
	Need(t, s.srv, s.err)
	return s.srv
}

// Database returns the URL of a fresh database on the shared server for t.
func (s *Shared) Database(t testing.TB) string {
	t.Helper()
	return s.Server(t).Database(t)
}

// Stop stops the server if a test started it.
func (s *Shared) Stop() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Stop()
}
