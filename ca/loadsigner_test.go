package ca

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSignerNeverCreates: LoadSigner loads what LoadOrCreateHostKey
// made, and refuses a missing key (creating nothing), loose permissions and
// a .pub of another key.
func TestLoadSignerNeverCreates(t *testing.T) {
	tests := []struct {
		name    string
		spoil   func(t *testing.T, dir string)
		wantErr string // "" loads; "not exist" means errors.Is fs.ErrNotExist
	}{
		{name: "loads", spoil: func(*testing.T, string) {}},
		{name: "loads without .pub", spoil: remove("key.pub")},
		{name: "missing", spoil: remove("key"), wantErr: "not exist"},
		{name: "loose permissions", spoil: chmod("key", 0o640), wantErr: "permissions 0640 are too open"},
		{name: "pub of another key", spoil: func(t *testing.T, dir string) {
			if _, err := LoadOrCreateHostKey(filepath.Join(dir, "other"), Ed25519); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "other.pub"), filepath.Join(dir, "key.pub")); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "does not match the private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key")
			made, err := LoadOrCreateHostKey(path, Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, dir)
			s, err := LoadSigner(path)
			switch {
			case tt.wantErr == "":
				if err != nil || !bytes.Equal(s.PublicKey().Marshal(), made.PublicKey().Marshal()) {
					t.Fatalf("LoadSigner = %v, %v; want the key that was made", s, err)
				}
			case tt.wantErr == "not exist":
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("LoadSigner of a missing key = %v, want fs.ErrNotExist", err)
				}
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("LoadSigner created %s: %v", path, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("LoadSigner = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
