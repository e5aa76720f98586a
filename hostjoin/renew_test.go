package hostjoin_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/hostjoin"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestRenew: a certificate with two thirds of its validity gone, or
// --force, is renewed (proving the host key; RSA keys sign rsa-sha2-512);
// a fresher one is kept and only the KRL is refreshed.
func TestRenew(t *testing.T) {
	tests := []struct {
		name        string
		keyType     string
		aged, force bool
		wantRenewed bool
	}{
		{"due ed25519", "ed25519", true, false, true},
		{"due rsa", "rsa", true, false, true},
		{"forced", "ed25519", false, true, true},
		{"not due", "ed25519", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRootWith(t, tt.keyType)
			s := newStandIn(t, "db1", "root")
			s.set(func(s *standIn) { s.aged = tt.aged })
			o := r.options(someJit(t))
			if _, err := join(t, o, s); err != nil {
				t.Fatal(err)
			}
			certPath := r.layout.Path(hostjoin.DefaultHostKey) + "-cert.pub"
			oldCert, _ := os.ReadFile(certPath)
			s.set(func(s *standIn) { s.krl = makeKRL(t, s.targetCA.PublicKey(), 42) })
			o.Force = tt.force
			res, err := hostjoin.Renew(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			// The account helper's wrapper goes with every renewal, so that
			// hosts joined before it get it.
			want := map[string]hostjoin.State{r.layout.Path(hostjoin.KRLFile): hostjoin.Changed, r.layout.Path(api.AccountHelperPath): hostjoin.Unchanged}
			if tt.wantRenewed {
				want[certPath] = hostjoin.Changed
				want[r.layout.Path(hostjoin.DropIn)] = hostjoin.Unchanged
				want[r.layout.Path(hostjoin.HostFile)] = hostjoin.Unchanged
			}
			got := states(res)
			if len(got) != len(want) && !tt.wantRenewed {
				t.Errorf("renew touched %v, want only the KRL", got)
			}
			for p, st := range want {
				if got[p] != st {
					t.Errorf("renew: %s %s, want %s", p, got[p], st)
				}
			}
			newCert, _ := os.ReadFile(certPath)
			krl, _ := os.ReadFile(r.layout.Path(hostjoin.KRLFile))
			if (string(newCert) != string(oldCert)) != tt.wantRenewed || string(krl) != string(s.krl) {
				t.Errorf("certificate replaced: %v, want %v; KRL installed: %v", string(newCert) != string(oldCert), tt.wantRenewed, string(krl) == string(s.krl))
			}
			if n := r.reloads(t); n != 2 {
				t.Errorf("reloaded %d times, want 2 (join and renew)", n)
			}
		})
	}
}

// TestRenewNothingChanged: a renewal that cannot prove the host key or
// reach jitd leaves everything as it was.
func TestRenewNothingChanged(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options)
		wantErr string
	}{
		{"daemon unreachable", func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options) {
			s.srv.Close()
			o.Force = true
		}, "renew db1"},
		{"daemon unreachable for the KRL", func(t *testing.T, r testRoot, s *standIn, _ *hostjoin.Options) {
			s.srv.Close()
		}, "fetch the KRL"},
		{"a KRL that is not one", func(t *testing.T, r testRoot, s *standIn, _ *hostjoin.Options) {
			s.set(func(s *standIn) { s.krl = []byte("<html>") })
		}, "not an OpenSSH KRL"},
		{"another host key", func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options) {
			other := newTestRoot(t)
			o.HostKey = r.layout.Path("/etc/ssh/other_host_ed25519_key")
			for _, ext := range []string{"", ".pub"} {
				b, err := os.ReadFile(other.layout.Path(hostjoin.DefaultHostKey) + ext)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(o.HostKey+ext, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			o.Force = true
		}, "does not verify"},
		{"a host key outside the root", func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options) {
			o.HostKey = newTestRoot(t).layout.Path(hostjoin.DefaultHostKey)
			o.Force = true
		}, "outside the root"},
		{"a symbolic link out of the root", func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options) {
			// Whoever can plant a link in an image tree must not steer a
			// renewal running as root to write the real /etc/ssh.
			d := r.layout.Path("/etc/ssh/sshd_config.d")
			if err := os.RemoveAll(d); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(t.TempDir(), d); err != nil {
				t.Fatal(err)
			}
			o.Force = true
		}, "symbolic link"},
		{"a directory others may write", func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options) {
			if err := os.Chmod(r.layout.Path("/etc/ssh/jitssh"), 0o777); err != nil {
				t.Fatal(err)
			}
			o.Force = true
		}, "writable by group or others"},
		{"not joined", func(t *testing.T, r testRoot, s *standIn, _ *hostjoin.Options) {
			if err := os.Remove(r.layout.Path(hostjoin.APIFile)); err != nil {
				t.Fatal(err)
			}
		}, "has not joined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRoot(t)
			s := newStandIn(t, "db1", "root")
			o := r.options(someJit(t))
			if _, err := join(t, o, s); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, r, s, &o)
			before := snapshot(t, r.layout.Root)
			_, err := hostjoin.Renew(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("renew: %v; want an error with %q", err, tt.wantErr)
			}
			sameTree(t, before, snapshot(t, r.layout.Root))
		})
	}
}

// TestRenewDryRunAsksNothing: a renewal issues and records a certificate,
// so a dry run (even --force) sends no renewal at all and leaves the tree
// as it was.
func TestRenewDryRunAsksNothing(t *testing.T) {
	r := newTestRoot(t)
	s := newStandIn(t, "db1", "root")
	o := r.options(someJit(t))
	if _, err := join(t, o, s); err != nil {
		t.Fatal(err)
	}
	before := testkit.Tree(t, r.layout.Root)
	s.mu.Lock()
	calls := s.calls
	s.mu.Unlock()
	o.Force, o.DryRun = true, true
	if _, err := hostjoin.Renew(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls != calls {
		t.Errorf("a dry renewal made %d calls to jitd, want none", s.calls-calls)
	}
	if diffs := testkit.TreeDiff(before, testkit.Tree(t, r.layout.Root)); len(diffs) > 0 {
		t.Errorf("a dry renewal changed the tree:\n%s", strings.Join(diffs, "\n"))
	}
}
