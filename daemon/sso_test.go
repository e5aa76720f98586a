package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRefusesBadSSOConfig checks that jitd serve --sso-config names a
// mistake by file and line, and refuses a file others could change.
func TestNewRefusesBadSSOConfig(t *testing.T) {
	dir := initDir(t)
	conf := filepath.Join(t.TempDir(), "sso.yaml")
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"http issuer", "providers:\n  - name: corp\n    issuer: http://127.0.0.1:1\n    client_id: jitssh\n", 0o600, conf + `:3: provider "corp": issuer: "http://127.0.0.1:1" must be an https:// URL`},
		{"group-writable", "providers:\n  - name: corp\n    issuer: https://127.0.0.1:1\n    client_id: jitssh\n", 0o620, "sso config " + conf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(conf, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(conf, tc.mode); err != nil {
				t.Fatal(err)
			}
			d, err := New(context.Background(), Config{Dir: dir, APIAddr: "127.0.0.1:0", SSOConfig: conf, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				d.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A good file with a provider that does not answer: jitd starts (key
	// login must keep working while the provider is down).
	if err := os.WriteFile(conf, []byte("providers:\n  - name: corp\n    issuer: https://127.0.0.1:1\n    client_id: jitssh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), Config{Dir: dir, APIAddr: "127.0.0.1:0", SSOConfig: conf, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("a provider that is down kept jitd from starting: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
