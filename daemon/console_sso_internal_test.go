package daemon

import (
	"strings"
	"testing"
)

func TestConsoleSSOOptions(t *testing.T) {
	for _, tc := range []struct{ url, want, err string }{
		{"", "", ""},
		{"https://jitd.example.com:7443", "https://jitd.example.com:7443/console/sso/callback", ""},
		{"http://jitd.example.com:7443", "", "--console-url"},
		{"https://jitd.example.com:7443/console", "", "has a path"},
	} {
		opts, err := consoleSSOOptions(Config{ConsoleURL: tc.url})
		switch {
		case tc.err == "" && (err != nil || opts.ConsoleRedirect != tc.want):
			t.Errorf("--console-url %q: %q, %v; want %q", tc.url, opts.ConsoleRedirect, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("--console-url %q: error %v, want one saying %q", tc.url, err, tc.err)
		}
	}
}
