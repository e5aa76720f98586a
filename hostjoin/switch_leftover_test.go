package hostjoin_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jitssh/jitssh/hostjoin"
)

// TestSwitchLeftoverIsNoFailure: once the check and the reload succeeded
// the new configuration is in force; an old version that cannot then be
// removed is reported as a LeftoverError, and the new file stays.
func TestSwitchLeftoverIsNoFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "50-jitssh.conf")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, ".50-jitssh.conf.jitssh-old")
	// The reload puts a non-empty directory where the old version was, so
	// that removing it fails.
	reload := func() error {
		if err := os.Remove(old); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(old, "x"), 0o755); err != nil {
			return err
		}
		return nil
	}
	changes, err := hostjoin.Switch([]hostjoin.File{{Path: path, Data: []byte("new\n"), Mode: 0o644}}, func() error { return nil }, reload)
	var left *hostjoin.LeftoverError
	if !errors.As(err, &left) || len(changes) != 1 {
		t.Fatalf("Switch = %v, %v; want the change and a LeftoverError", changes, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("the file holds %q after a successful switch, want the new version", b)
	}
}
