package hostjoin

import (
	"os"
	"path/filepath"
	"testing"
)

// TestEphemeralMember: only a jit- login that is a member of the managed
// group counts; another group, a non-ephemeral name or no group file do not.
func TestEphemeralMember(t *testing.T) {
	file := filepath.Join(t.TempDir(), "group")
	group := "root:x:0:\njitssh-ephemeral:x:999:jit-alice-4f2k,jit-x,deploy\nstaff:x:50:jit-standing\n"
	if err := os.WriteFile(file, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]bool{"jit-alice-4f2k": true, "jit-x": true, "jit-standing": false, "deploy": false, "jit-alice": false, "root": false} {
		if got, err := ephemeralMember(file, user); err != nil || got != want {
			t.Errorf("ephemeralMember(%q) = %v, %v; want %v", user, got, err, want)
		}
	}
	if got, err := ephemeralMember(filepath.Join(t.TempDir(), "none"), "jit-x"); err != nil || got {
		t.Errorf("without a group file: %v, %v", got, err)
	}
}
