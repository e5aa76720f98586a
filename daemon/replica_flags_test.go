package daemon

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestAdvertiseURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		given, listening, want string
		ok                     bool
	}{
		{"", "10.0.0.11:7443", "https://10.0.0.11:7443", true},
		{"", "[::1]:7443", "https://[::1]:7443", true},
		{"", "0.0.0.0:7443", "https://" + host + ":7443", true},
		{"", "[::]:7443", "https://" + host + ":7443", true},
		{"https://jitd-a.internal:7443", "0.0.0.0:7443", "https://jitd-a.internal:7443", true},
		{"https://jitd-a.internal:7443/", "", "https://jitd-a.internal:7443", true},
		{"http://jitd-a.internal:7443", "", "", false},
		{"https://jitd-a.internal", "", "", false},
		{"https://jitd-a.internal:7443/v1", "", "", false},
		{"https://u:p@jitd-a.internal:7443", "", "", false},
		{"https://jitd-a.internal:7443?x=1", "", "", false},
		{"jitd-a.internal:7443", "", "", false},
	} {
		got, err := advertiseURL(c.given, c.listening)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("advertiseURL(%q, %q) = %q, %v; want %q, ok %v", c.given, c.listening, got, err, c.want, c.ok)
		}
	}
}

func TestReplicaIDFile(t *testing.T) {
	dir := t.TempDir()
	id, err := loadReplicaID(dir, "")
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("first loadReplicaID = %q, %v; want 16 hex characters", id, err)
	}
	again, err := loadReplicaID(dir, "")
	if err != nil || again != id {
		t.Fatalf("second loadReplicaID = %q, %v; want the kept %q", again, err, id)
	}
	if got, err := loadReplicaID(dir, "eu-west-1.a"); err != nil || got != "eu-west-1.a" {
		t.Fatalf("given id = %q, %v", got, err)
	}
	for _, bad := range []string{"-x", "a b", "a/b", string(make([]byte, 65))} {
		if _, err := loadReplicaID(dir, bad); err == nil {
			t.Errorf("replica id %q accepted", bad)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "replica-id"), []byte("bad id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadReplicaID(dir, ""); err == nil {
		t.Error("a bad replica-id file was accepted")
	}
}

// FuzzAdvertiseURL checks that whatever --advertise-url accepts is an
// https origin that it accepts again unchanged.
func FuzzAdvertiseURL(f *testing.F) {
	for _, s := range []string{"https://a:1", "https://[::1]:7443/", "http://a:1", "https://a", "https://a:1/x?y#z", "https://@a:1", "https://a:1%2f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := advertiseURL(s, "127.0.0.1:1")
		if err != nil || s == "" {
			return
		}
		u, perr := url.Parse(got)
		if perr != nil || u.Scheme != "https" || u.Port() == "" || u.Path != "" || u.User != nil {
			t.Fatalf("advertiseURL(%q) = %q, not an https origin", s, got)
		}
		if again, err := advertiseURL(got, ""); err != nil || again != got {
			t.Fatalf("advertiseURL(%q) = %q, %v; want it unchanged", got, again, err)
		}
	})
}
