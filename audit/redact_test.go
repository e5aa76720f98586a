package audit

import (
	"strings"
	"testing"
)

// TestRedactURLQueryPasswords: a password given as a query parameter is
// masked too, not only the userinfo one.
func TestRedactURLQueryPasswords(t *testing.T) {
	for _, u := range []string{
		"postgres://u:secret@h/db",
		"postgres://u@h/db?password=secret",
		"postgres://u@h/db?sslmode=require&sslpassword=secret",
		"postgres://u@h/db?PASSWORD=secret",
	} {
		if got := RedactURL(u); strings.Contains(got, "secret") {
			t.Errorf("RedactURL(%q) = %q, shows the password", u, got)
		}
	}
}
