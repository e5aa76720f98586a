package main

import (
	"slices"
	"testing"

	"github.com/jitssh/jitssh/creds"
)

func TestNearestHosts(t *testing.T) {
	names := []string{"web1", "web2", "web10", "db1", "db2", "webl-old", "cache1"}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"webl", []string{"web1", "web2"}},
		{"web", []string{"web1", "web2"}},
		{"db3", []string{"db1", "db2"}},
		{"wbe1", []string{"web1"}},
		{"cache2", []string{"cache1"}},
		{"web11", []string{"web1", "web10", "web2"}},
		{"mail1", nil},
		{"web1", []string{"web10", "web2"}},
	} {
		got := nearest(tc.name, names, maxSuggestions)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("nearest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"web1", "webl", 1}, {"ü1", "u1", 1}, {"wbe1", "web1", 1}, {"ca", "abc", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

// jit ssh dials the host and port of what /v1/ca advertised, a name or an
// IPv6 address alike, and checks the certificate under the alias.
func TestSSHArgsDialAdvertised(t *testing.T) {
	g := creds.Grant{Login: "deploy", Host: "web1", KeyPath: "/k", CertPath: "/k-cert.pub"}
	for _, tc := range []struct{ bastion, host, port string }{
		{"bastion.example.com:2222", "bastion.example.com", "2222"},
		{"[2001:db8::7]:22", "2001:db8::7", "22"},
		{"127.0.0.2:2200", "127.0.0.2", "2200"},
	} {
		args := sshArgs(tc.bastion, "/kh", g, false)
		if args[len(args)-1] != tc.host || !slices.Equal(args[:2], []string{"-p", tc.port}) || !slices.Contains(args, "HostKeyAlias=jitssh-bastion") {
			t.Errorf("sshArgs(%q) = %q, want port %s, host %s last", tc.bastion, args, tc.port, tc.host)
		}
	}
}
