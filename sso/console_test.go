package sso

import (
	"errors"
	"strings"
	"testing"
)

func TestConsoleRedirectURI(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"https://jitd.example.com:7443", "https://jitd.example.com:7443/console/sso/callback", ""},
		{"https://jitd.example.com:7443/", "https://jitd.example.com:7443/console/sso/callback", ""},
		{"https://jitd.example.com", "https://jitd.example.com/console/sso/callback", ""},
		{"https://jitd.example.com:443", "https://jitd.example.com/console/sso/callback", ""},
		{"https://[::1]:7443", "https://[::1]:7443/console/sso/callback", ""},
		{"http://jitd.example.com:7443", "", "is not https"},
		{"https://jitd.example.com:7443/console", "", "has a path"},
		{"https://u@jitd.example.com:7443", "", "user, query"},
		{"https://jitd.example.com:7443?x=1", "", "user, query"},
		{"https://jitd.example.com:0", "", "valid port"},
		{"https://:7443", "", "no host"},
		{"jitd.example.com:7443", "", ""},
	} {
		got, err := ConsoleRedirectURI(tc.in)
		switch {
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("ConsoleRedirectURI(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.want == "" && err == nil:
			t.Errorf("ConsoleRedirectURI(%q) = %q, want an error", tc.in, got)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ConsoleRedirectURI(%q) error %q, want it to say %q", tc.in, err, tc.err)
		}
	}
}

// TestConsoleRedirectAllowList checks that an RP with a console redirect
// accepts exactly it beside loopback redirects, and that without one it
// accepts loopback only.
func TestConsoleRedirectAllowList(t *testing.T) {
	const console = "https://jitd.example.com:7443/console/sso/callback"
	with, err := New(&Config{}, Options{Store: testStore(t), ConsoleRedirect: console})
	if err != nil {
		t.Fatal(err)
	}
	without, err := New(&Config{}, Options{Store: testStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uri           string
		with, without bool
	}{
		{console, true, false},
		{"http://127.0.0.1:4000/callback", true, true},
		{"http://[::1]:4000/callback", true, true},
		{"https://jitd.example.com:7443/console/sso/callback/", false, false},
		{"https://jitd.example.com:7443/console/sso/callback?x=1", false, false},
		{"https://jitd.example.com:7443/console/sso/callbacks", false, false},
		{"https://JITD.example.com:7443/console/sso/callback", false, false},
		{"https://jitd.example.com:7444/console/sso/callback", false, false},
		{"https://jitd.example.com.evil.test:7443/console/sso/callback", false, false},
		{"https://evil.test/console/sso/callback", false, false},
		{"http://jitd.example.com:7443/console/sso/callback", false, false},
		{"https://jitd.example.com:7443/other", false, false},
		{"https://127.0.0.1:4000/callback", false, false},
		{"", false, false},
	} {
		for _, c := range []struct {
			rp   *RP
			want bool
			name string
		}{{with, tc.with, "with"}, {without, tc.without, "without"}} {
			err := c.rp.checkRedirect(tc.uri)
			var se *Error
			switch {
			case c.want && err != nil:
				t.Errorf("%s console redirect: %q refused: %v", c.name, tc.uri, err)
			case !c.want && err == nil:
				t.Errorf("%s console redirect: %q accepted", c.name, tc.uri)
			case !c.want && (!errors.As(err, &se) || se.Code != CodeBadRedirect):
				t.Errorf("%s console redirect: %q refused with %v, want %s", c.name, tc.uri, err, CodeBadRedirect)
			}
		}
	}
}
