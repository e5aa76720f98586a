package sso

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jitssh/jitssh/audit"
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
	os.Exit(code)
}

// storeOpeners open, for one test, a fresh store and further handles on
// the same database: what replicas of jitd on one store have.
var storeOpeners = []struct {
	name string
	open func(t testing.TB) (first *audit.Store, another func() *audit.Store)
}{
	{"sqlite", func(t testing.TB) (*audit.Store, func() *audit.Store) {
		path := filepath.Join(t.TempDir(), "jitssh.db")
		return openStore(t, path), func() *audit.Store { return openStore(t, path) }
	}},
	{"postgres", func(t testing.TB) (*audit.Store, func() *audit.Store) {
		u := pgServer.Database(t)
		return openStore(t, u), func() *audit.Store { return openStore(t, u) }
	}},
}

// openStore opens the store at target (a file or a postgres:// URL) until
// t ends.
func openStore(t testing.TB, target string) *audit.Store {
	t.Helper()
	var s *audit.Store
	var err error
	if audit.IsPostgresURL(target) {
		s, err = audit.OpenURL(context.Background(), target, audit.Options{})
	} else {
		s, err = audit.Open(target)
	}
	if err != nil {
		t.Fatalf("open store %s: %v", target, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// testStore is a fresh SQLite store for t.
func testStore(t testing.TB) *audit.Store {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "jitssh.db"))
}
