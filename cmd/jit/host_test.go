package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/hostjoin"
)

// TestHostPrincipals checks jit host principals as sshd calls it: the
// principal USER@HOST for a login in the logins file, nothing (exit 0) for
// another user, and errors for a host that never joined and bad usage.
func TestHostPrincipals(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/ssh/jitssh")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"host": "db1\n", "logins": "deploy\nroot\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"host", "principals", "--root", root, "deploy"}, 0, "deploy@db1\n", ""},
		{[]string{"host", "principals", "root", "--root", root}, 0, "root@db1\n" + hostjoin.ProvisionPrincipalsLine("db1") + "\n", ""},
		{[]string{"host", "principals", "--root", root, "postgres"}, 0, "", ""},
		{[]string{"host", "principals", "--root", root, "deploy@db1"}, 0, "", ""},
		{[]string{"host", "principals", "--root", t.TempDir(), "deploy"}, exitError, "", "has not joined"},
		{[]string{"host", "principals", "--root", root}, exitUsage, "", "give one USER"},
		{[]string{"host", "join", "--ca", "https://127.0.0.1:1", "--fingerprint", "SHA256:x", "--token", "t", "extra"}, exitUsage, "", "takes no arguments"},
		{[]string{"host", "join", "--ca", "https://127.0.0.1:1", "--fingerprint", "SHA256:x"}, exitUsage, "", "token"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"jit"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode || stdout.String() != tt.wantStdout || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q", code, stdout.String(), stderr.String(), tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

// TestHostHints checks that the refusals of enrolment say what to do.
func TestHostHints(t *testing.T) {
	for code, want := range map[string]string{
		api.CodeJoinTokenInvalid: "jit admin host token",
		api.CodeHostKeyChanged:   "jit admin host remove",
		api.CodeHostRemoved:      "new token",
	} {
		if got := hintFor(&api.Error{Status: 401, Code: code}); !strings.Contains(got, want) {
			t.Errorf("hint for %s = %q, want it to mention %q", code, got, want)
		}
	}
}

// TestPrintHostResult checks the report of a switch and of a dry run: each
// file with its state, the reload, the drop-in text of a dry run, the cron
// line.
func TestPrintHostResult(t *testing.T) {
	l, err := hostjoin.NewLayout("/srv/root")
	if err != nil {
		t.Fatal(err)
	}
	r := hostjoin.Result{
		Host: "db1", DropIn: "TrustedUserCAKeys /srv/root/etc/ssh/jitssh/target_ca.pub\n",
		Changes: []hostjoin.Change{
			{Path: "/srv/root/etc/ssh/jitssh/host", State: hostjoin.Created},
			{Path: "/srv/root/etc/ssh/jitssh/revoked.krl", State: hostjoin.Unchanged},
		},
		Reload: "systemctl reload ssh", CronLine: "17 3 * * * root /usr/local/bin/jit host renew --root /srv/root",
	}
	tests := []struct {
		dry        bool
		want, nope []string
	}{
		{false, []string{"host: db1\n", "created /srv/root/etc/ssh/jitssh/host\n", "unchanged /srv/root/etc/ssh/jitssh/revoked.krl\n", "sshd reloaded: systemctl reload ssh\n", r.CronLine + "\n"}, []string{"dry run", "TrustedUserCAKeys"}},
		{true, []string{"dry run: nothing changed\n", "would be created /srv/root/etc/ssh/jitssh/host\n", "sshd reload would be: systemctl reload ssh\n", "/srv/root/etc/ssh/sshd_config.d/50-jitssh.conf:\n" + r.DropIn}, []string{"sshd reloaded"}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		printHostResult(&b, hostjoin.Options{Layout: l, DryRun: tt.dry}, r)
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("dry %v: output lacks %q:\n%s", tt.dry, w, b.String())
			}
		}
		for _, n := range tt.nope {
			if strings.Contains(b.String(), n) {
				t.Errorf("dry %v: output has %q:\n%s", tt.dry, n, b.String())
			}
		}
	}
}
