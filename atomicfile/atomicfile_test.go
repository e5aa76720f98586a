package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWriteAndCreate(t *testing.T) {
	tests := []struct {
		name     string
		existing string // content already at path; "" for none
		create   bool   // Create instead of Write
		perm     fs.FileMode
		want     string // content at path afterwards
		wantErr  error
	}{
		{name: "write new", perm: 0o600, want: "new"},
		{name: "write replaces", existing: "old", perm: 0o644, want: "new"},
		{name: "write mode ignores umask", perm: 0o666, want: "new"},
		{name: "create new", create: true, perm: 0o600, want: "new"},
		{name: "create refuses existing", existing: "old", create: true, perm: 0o600, want: "old", wantErr: fs.ErrExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			op := Write
			if tt.create {
				op = Create
			}
			err := op(path, []byte("new"), tt.perm)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("content %q, want %q", got, tt.want)
			}
			if tt.wantErr == nil {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != tt.perm {
					t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.perm)
				}
			}
			assertOnly(t, dir, "f")
		})
	}
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "f")
	for name, op := range map[string]func(string, []byte, fs.FileMode) error{"write": Write, "create": Create} {
		if err := op(path, []byte("x"), 0o600); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s into a missing directory: %v, want fs.ErrNotExist", name, err)
		}
	}
}

// TestCreateRace has many writers create one file at once: exactly one wins
// and the file holds its data whole.
func TestCreateRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Create(path, []byte{byte('a' + i)}, 0o600)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(rune('a'+winner)) {
		t.Errorf("file holds %q, want the winner's %q", got, string(rune('a'+winner)))
	}
	assertOnly(t, dir, "key")
}

// assertOnly checks that no temporary file is left beside name.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, name)
	}
}
