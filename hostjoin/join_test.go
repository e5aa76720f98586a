package hostjoin_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/hostjoin"
)

// someJit is a root-owned binary standing in as the principals command's
// path in tests that never let sshd run it (sshd -t only checks the line).
func someJit(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func join(t *testing.T, o hostjoin.Options, s *standIn) (hostjoin.Result, error) {
	t.Helper()
	return hostjoin.Join(context.Background(), o, s.URL(), s.fingerprint, s.token)
}

func states(r hostjoin.Result) map[string]hostjoin.State {
	m := map[string]hostjoin.State{}
	for _, c := range r.Changes {
		m[c.Path] = c.State
	}
	return m
}

func TestJoinInstalls(t *testing.T) {
	r := newTestRoot(t)
	s := newStandIn(t, "db1", "postgres", "root")
	s.set(func(s *standIn) { s.sameCert = true })
	keyBefore, err := os.ReadFile(r.layout.Path(hostjoin.DefaultHostKey))
	if err != nil {
		t.Fatal(err)
	}
	res, err := join(t, r.options(someJit(t)), s)
	if err != nil {
		t.Fatal(err)
	}
	l := r.layout
	want := map[string]string{
		l.Path(hostjoin.HostFile):                     "db1\n",
		l.Path(hostjoin.LoginsFile):                   "postgres\nroot\n",
		l.Path(hostjoin.TargetCAFile):                 authorized(s.targetCA.PublicKey()) + "\n",
		l.Path(hostjoin.KRLFile):                      string(s.krl),
		l.Path(hostjoin.DefaultHostKey) + "-cert.pub": s.certs[string(r.hostKey.Marshal())] + "\n",
		l.Path(hostjoin.APIFile):                      "# The jitssh CA this host joined, for jit host renew.\nurl " + s.URL() + "\nfingerprint " + s.fingerprint + "\nhost-key " + l.Path(hostjoin.DefaultHostKey) + "\n",
	}
	for p, content := range want {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", p, b, err, content)
		}
	}
	for _, p := range []string{hostjoin.HostFile, hostjoin.LoginsFile, hostjoin.TargetCAFile, hostjoin.KRLFile, hostjoin.APIFile, hostjoin.DropIn, hostjoin.DefaultHostKey + "-cert.pub", hostjoin.ServiceUnit, hostjoin.TimerUnit} {
		if fi, err := os.Stat(l.Path(p)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v; want mode 0644", p, fi.Mode(), err)
		}
	}
	// The ephemeral-account helper: a root-owned 0755 wrapper running this
	// jit, and its 0700 state directory.
	if b, err := os.ReadFile(l.Path(api.AccountHelperPath)); err != nil || string(b) != "#!/bin/sh\nexec "+someJit(t)+" host account\n" {
		t.Errorf("%s = %q, %v", api.AccountHelperPath, b, err)
	}
	if fi, err := os.Stat(l.Path(api.AccountHelperPath)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: %v, %v; want mode 0755", api.AccountHelperPath, fi.Mode(), err)
	}
	if fi, err := os.Stat(l.Path(api.AccountStateDir)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || states(res)[l.Path(api.AccountStateDir)] != hostjoin.Created {
		t.Errorf("%s: %v, %v; want a new 0700 directory", api.AccountStateDir, fi.Mode(), err)
	}
	if fi, err := os.Stat(l.Path(hostjoin.Dir)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: %v, %v; want 0755", hostjoin.Dir, fi.Mode(), err)
	}
	if target, err := os.Readlink(l.Path(hostjoin.TimerWants)); err != nil || target != hostjoin.TimerUnit {
		t.Errorf("timer link -> %q, %v; want %s", target, err, hostjoin.TimerUnit)
	}
	dropIn, _ := os.ReadFile(l.Path(hostjoin.DropIn))
	for _, line := range []string{
		"TrustedUserCAKeys " + l.Path(hostjoin.TargetCAFile),
		"RevokedKeys " + l.Path(hostjoin.KRLFile),
		"HostCertificate " + l.Path(hostjoin.DefaultHostKey) + "-cert.pub",
		"AuthorizedPrincipalsCommand " + someJit(t) + " host principals --root " + l.Root + " %u",
		"AuthorizedPrincipalsCommandUser nobody",
	} {
		if !strings.Contains(string(dropIn), "\n"+line+"\n") {
			t.Errorf("drop-in lacks %q:\n%s", line, dropIn)
		}
	}
	if keyAfter, _ := os.ReadFile(l.Path(hostjoin.DefaultHostKey)); string(keyAfter) != string(keyBefore) {
		t.Error("the private host key changed")
	}
	for p, st := range states(res) {
		if st != hostjoin.Created {
			t.Errorf("first join: %s %s, want created", p, st)
		}
	}
	if n := r.reloads(t); n != 1 {
		t.Errorf("reloaded %d times, want 1", n)
	}
	if res.Host != "db1" || !strings.Contains(res.CronLine, someJit(t)+" host renew --root "+l.Root) {
		t.Errorf("result host %q cron %q", res.Host, res.CronLine)
	}

	// The same answer again: every file unchanged, no check, no reload.
	before := snapshot(t, l.Root)
	res, err = join(t, r.options(someJit(t)), s)
	if err != nil {
		t.Fatal(err)
	}
	for p, st := range states(res) {
		if st != hostjoin.Unchanged {
			t.Errorf("second join: %s %s, want unchanged", p, st)
		}
	}
	if n := r.reloads(t); n != 1 || res.Reload != "" {
		t.Errorf("after an unchanged join: reloaded %d times (%q), want 1", n, res.Reload)
	}
	sameTree(t, before, snapshot(t, l.Root))
}

// TestJoinFailureRestores: whatever fails after the new files are in
// place, the tree is afterwards byte for byte what it was, from an empty
// root (new files and directories removed) and over an earlier join (old
// versions back).
func TestJoinFailureRestores(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, r testRoot, o *hostjoin.Options)
		wantErr string
	}{
		{"sshd -t fails on a broken drop-in", func(t *testing.T, r testRoot, _ *hostjoin.Options) {
			writeFile(t, r.layout.Path("/etc/ssh/sshd_config.d/40-broken.conf"), "NoSuchKeyword yes\n")
		}, "-t -f"},
		{"the sshd binary fails", func(t *testing.T, r testRoot, o *hostjoin.Options) {
			o.SSHD = "/bin/false"
		}, "/bin/false -t"},
		{"another drop-in wins", func(t *testing.T, r testRoot, _ *hostjoin.Options) {
			writeFile(t, r.layout.Path("/etc/ssh/sshd_config.d/10-other.conf"), "TrustedUserCAKeys /etc/ssh/other_ca.pub\n")
		}, "trustedusercakeys in force"},
		{"the reload command fails", func(t *testing.T, r testRoot, o *hostjoin.Options) {
			o.ReloadCommand = "echo no sshd here >&2; exit 3"
		}, "no sshd here"},
	}
	for _, tt := range tests {
		for _, earlier := range []bool{false, true} {
			name := tt.name + " on a fresh root"
			if earlier {
				name = tt.name + " over a join"
			}
			t.Run(name, func(t *testing.T) {
				r := newTestRoot(t)
				s := newStandIn(t, "db1", "root")
				o := r.options(someJit(t))
				if earlier {
					if _, err := join(t, o, s); err != nil {
						t.Fatal(err)
					}
					s.set(func(s *standIn) { s.logins = []string{"root", "deploy"}; s.krl = makeKRL(t, s.targetCA.PublicKey(), 7) })
				}
				tt.prepare(t, r, &o)
				before := snapshot(t, r.layout.Root)
				_, err := join(t, o, s)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "old files are back") {
					t.Fatalf("join: %v; want an error with %q saying the old files are back", err, tt.wantErr)
				}
				sameTree(t, before, snapshot(t, r.layout.Root))
			})
		}
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestJoinNothingChanged: failures before the switch leave every file
// alone and run no reload.
func TestJoinNothingChanged(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(s *standIn, o *hostjoin.Options) (url, token string)
		wantErr string
		wantAPI string // api error code, if any
		// sendsNothing: the failure comes before the token is sent.
		sendsNothing bool
	}{
		{"API unreachable", func(s *standIn, _ *hostjoin.Options) (string, string) {
			return "https://127.0.0.1:1", s.token
		}, "connect", "", false},
		{"bad token", func(s *standIn, _ *hostjoin.Options) (string, string) {
			return s.URL(), "jhj_wrong"
		}, "join token unknown", api.CodeJoinTokenInvalid, false},
		{"certificate for another key", func(s *standIn, _ *hostjoin.Options) (string, string) {
			s.set(func(s *standIn) { s.badCert = true })
			return s.URL(), s.token
		}, "not this host's", "", false},
		{"no sshd binary", func(s *standIn, o *hostjoin.Options) (string, string) {
			o.SSHD = "/nonexistent/sshd"
			return s.URL(), s.token
		}, "/nonexistent/sshd", "", true},
		{"another join running", func(s *standIn, o *hostjoin.Options) (string, string) {
			f, err := os.Open(o.Layout.Path("/etc/ssh"))
			if err != nil {
				panic(err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				panic(err)
			}
			s.t.Cleanup(func() { f.Close() })
			return s.URL(), s.token
		}, "another jit host join or renew is running", "", true},
		{"principals command sshd would refuse", func(s *standIn, o *hostjoin.Options) (string, string) {
			o.Jit = "/tmp" // world-writable: sshd's safe_path refuses it
			return s.URL(), s.token
		}, "writable by group or others", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRoot(t)
			s := newStandIn(t, "db1", "root")
			o := r.options(someJit(t))
			url, token := tt.prepare(s, &o)
			before := snapshot(t, r.layout.Root)
			_, err := hostjoin.Join(context.Background(), o, url, s.fingerprint, token)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("join: %v; want an error with %q", err, tt.wantErr)
			}
			var ae *api.Error
			if tt.wantAPI != "" && (!errors.As(err, &ae) || ae.Code != tt.wantAPI) {
				t.Errorf("join: %v; want API code %s", err, tt.wantAPI)
			}
			sameTree(t, before, snapshot(t, r.layout.Root))
			if tt.sendsNothing && s.callCount() != 0 {
				t.Errorf("the token was sent (%d calls) although the join could not go ahead", s.callCount())
			}
		})
	}
}

// TestDryRun: a dry join sends nothing (its token can be used once),
// changes nothing, and reports each file's state and the drop-in.
func TestDryRun(t *testing.T) {
	r := newTestRoot(t)
	s := newStandIn(t, "db1", "root")
	o := r.options(someJit(t))
	o.DryRun = true
	before := snapshot(t, r.layout.Root)
	res, err := join(t, o, s)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, before, snapshot(t, r.layout.Root))
	if s.callCount() != 0 {
		t.Errorf("a dry run called jitd %d times", s.callCount())
	}
	for p, st := range states(res) {
		if st != hostjoin.Created {
			t.Errorf("dry run on a fresh root: %s %s, want created", p, st)
		}
	}
	if !strings.Contains(res.DropIn, "TrustedUserCAKeys "+r.layout.Path(hostjoin.TargetCAFile)) {
		t.Errorf("dry run drop-in:\n%s", res.DropIn)
	}

	// After a real join: files only jitd knows are "changed", the others
	// the plan can compare are "unchanged".
	o.DryRun = false
	if _, err := join(t, o, s); err != nil {
		t.Fatal(err)
	}
	o.DryRun = true
	before = snapshot(t, r.layout.Root)
	res, err = join(t, o, s)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, before, snapshot(t, r.layout.Root))
	got := states(res)
	for p, want := range map[string]hostjoin.State{
		hostjoin.DropIn: hostjoin.Unchanged, hostjoin.APIFile: hostjoin.Unchanged, hostjoin.TimerWants: hostjoin.Unchanged,
		hostjoin.HostFile: hostjoin.Changed, hostjoin.KRLFile: hostjoin.Changed,
	} {
		if got[r.layout.Path(p)] != want {
			t.Errorf("dry run after a join: %s %s, want %s", p, got[r.layout.Path(p)], want)
		}
	}
}
