package hostjoin_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/hostjoin"
)

func TestRenew(t *testing.T) {
	for _, keyType := range []string{"ed25519", "rsa"} {
		t.Run(keyType, func(t *testing.T) { testRenew(t, keyType) })
	}
}

func testRenew(t *testing.T, keyType string) {
	r := newTestRootWith(t, keyType)
	s := newStandIn(t, "db1", "root")
	o := r.options(someJit(t))
	if _, err := join(t, o, s); err != nil {
		t.Fatal(err)
	}
	certPath := r.layout.Path(hostjoin.DefaultHostKey) + "-cert.pub"
	oldCert, _ := os.ReadFile(certPath)
	s.set(func(s *standIn) { s.krl = makeKRL(t, s.targetCA.PublicKey(), 42) })

	res, err := hostjoin.Renew(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := states(res)
	for p, want := range map[string]hostjoin.State{
		certPath:                          hostjoin.Changed,
		r.layout.Path(hostjoin.KRLFile):   hostjoin.Changed,
		r.layout.Path(hostjoin.DropIn):    hostjoin.Unchanged,
		r.layout.Path(hostjoin.HostFile):  hostjoin.Unchanged,
		r.layout.Path(hostjoin.APIFile):   hostjoin.Unchanged,
		r.layout.Path(hostjoin.TimerUnit): hostjoin.Unchanged,
	} {
		if got[p] != want {
			t.Errorf("renew: %s %s, want %s", p, got[p], want)
		}
	}
	newCert, _ := os.ReadFile(certPath)
	krl, _ := os.ReadFile(r.layout.Path(hostjoin.KRLFile))
	if string(newCert) == string(oldCert) || string(krl) != string(s.krl) {
		t.Error("renew did not install the new certificate and KRL")
	}
	if n := r.reloads(t); n != 2 {
		t.Errorf("reloaded %d times, want 2 (join and renew)", n)
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
		{"daemon unreachable", func(t *testing.T, r testRoot, s *standIn, _ *hostjoin.Options) {
			s.srv.Close()
		}, "renew db1"},
		{"another host key", func(t *testing.T, r testRoot, s *standIn, o *hostjoin.Options) {
			other := newTestRoot(t)
			o.HostKey = other.layout.Path(hostjoin.DefaultHostKey)
		}, "does not verify"},
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
