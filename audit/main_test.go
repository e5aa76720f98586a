package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jitssh/jitssh/internal/pgtest"
)

// pgServer is the package's one PostgreSQL, started by the first test that
// needs it and stopped by TestMain.
var pgServer pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgServer.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// pgURL returns the URL of a fresh PostgreSQL database for t (skipping t,
// or failing it with CI=true, when PostgreSQL is not installed).
func pgURL(t testing.TB) string {
	t.Helper()
	return pgServer.Database(t)
}

// openPG opens a store on a fresh PostgreSQL database and closes it when
// the test ends.
func openPG(t testing.TB) (*Store, string) {
	t.Helper()
	u := pgURL(t)
	s, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatalf("OpenURL(%q): %v", u, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, u
}

// engines are the two stores every test of the package's SQL runs against.
var engines = []struct {
	name string
	open func(testing.TB) (*Store, string)
}{
	{"sqlite", openTest},
	{"postgres", openPG},
}

// forEngines runs fn as a subtest per engine, giving it that engine's
// opener of fresh stores (named openTest by the callers, so that a test's
// body reads the same whichever engine it runs on).
func forEngines(t *testing.T, fn func(t *testing.T, openTest func(testing.TB) (*Store, string))) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, e.open) })
	}
}

// at returns a fixed instant (with nanoseconds, to check they survive) plus d.
func at(d time.Duration) time.Time {
	return time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC).Add(d)
}

// openTest opens a fresh store in a temporary directory and closes it when
// the test ends.
func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jitssh.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

// mustDo runs fn through s.Do and fails the test on error.
func mustDo(t testing.TB, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Do(context.Background(), fn); err != nil {
		t.Fatalf("Do: %v", err)
	}
}
