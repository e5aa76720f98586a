package grant_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/pgtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// pgServer is the package's one PostgreSQL, started by the first test that
// needs it and stopped by TestMain.
var pgServer pgtest.Shared

// replicaStores are the engines the replica tests run on: each opens a
// store target for one test (a file, a fresh PostgreSQL database).
var replicaStores = []struct {
	name   string
	target func(t testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "replicas.db") }},
	{"postgres", func(t testing.TB) string {
		return pgServer.Database(t)
	}},
}

func openTarget(t testing.TB, target string) *audit.Store {
	t.Helper()
	var s *audit.Store
	var err error
	if audit.IsPostgresURL(target) {
		s, err = audit.OpenURL(context.Background(), target, audit.Options{})
	} else {
		s, err = audit.Open(target)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// replicaLogins returns two Logins on two handles of the store at target,
// as two replicas of jitd have, with the env's policy and clock.
func replicaLogins(t testing.TB, e *env, target string) (a, b *grant.Logins, store *audit.Store) {
	t.Helper()
	var out []*grant.Logins
	var first *audit.Store
	for range 2 {
		s := openTarget(t, target)
		if first == nil {
			first = s
		}
		l, err := grant.NewLogins(grant.LoginConfig{Store: s, Policy: e.pol.Load, Message: loginMessage, TokenTTL: time.Hour, Clock: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out[0], out[1], first
}

// TestChallengeAcrossReplicas checks that a key login's challenge issued
// by one replica is answered at another, once; that a replay at either
// is refused; that an expired one is refused; and that each outcome is
// recorded once.
func TestChallengeAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	for _, eng := range replicaStores {
		t.Run(eng.name, func(t *testing.T) {
			e, _, zed := loginEnv(t)
			a, b, store := replicaLogins(t, e, eng.target(t))
			at := attempt(t, a, "zed", zed, nil)
			if _, err := b.Login(ctx, at); err != nil {
				t.Fatalf("answer at the other replica: %v", err)
			}
			for _, l := range []*grant.Logins{a, b} {
				_, err := l.Login(ctx, at)
				wantError(t, err, grant.KindUnauthenticated, grant.CodeBadChallenge)
			}
			late := attempt(t, b, "zed", zed, nil)
			e.clock.Advance(time.Minute + time.Second)
			_, err := a.Login(ctx, late)
			wantError(t, err, grant.KindUnauthenticated, grant.CodeBadChallenge)
			evs, err := store.Events(ctx, audit.EventFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Type+"/"+ev.Code)
			}
			want := []string{"login/ok", "login.failed/bad_challenge", "login.failed/bad_challenge", "login.failed/bad_challenge"}
			if !slices.Equal(got, want) {
				t.Fatalf("events %q, want %q", got, want)
			}
		})
	}
}

// TestChallengesPerAddress checks that one client address (an IPv6 /64
// counts as one) holds at most MaxChallengesPerAddress unanswered
// challenges, whichever replica issued them, while another address is
// still served; that an answered or expired challenge frees its place;
// and that a host renewal's challenge is no login challenge.
func TestChallengesPerAddress(t *testing.T) {
	ctx := context.Background()
	for _, eng := range replicaStores {
		t.Run(eng.name, func(t *testing.T) {
			e, _, _ := loginEnv(t)
			a, b, _ := replicaLogins(t, e, eng.target(t))
			var nonces []string
			for i := range grant.MaxChallengesPerAddress {
				l := []*grant.Logins{a, b}[i%2]
				n, _, err := l.Challenge(ctx, "zed", "2001:db8::"+string(rune('a'+i%6)))
				if err != nil {
					t.Fatalf("challenge %d: %v", i, err)
				}
				nonces = append(nonces, n)
			}
			_, _, err := a.Challenge(ctx, "zed", "2001:db8::ffff")
			wantError(t, err, grant.KindUnavailable, grant.CodeBusy)
			if _, _, err := b.Challenge(ctx, "zed", "2001:db8:0:1::1"); err != nil {
				t.Fatalf("another /64: %v", err)
			}
			// An answer, even a wrong one, spends the challenge.
			_, err = b.Login(ctx, grant.LoginAttempt{User: "zed", Nonce: nonces[0], PublicKey: "ssh-ed25519 AAAA", Signature: "x"})
			wantError(t, err, grant.KindInvalid, grant.CodeInvalidPublicKey)
			if _, _, err := a.Challenge(ctx, "zed", "2001:db8::1"); err != nil {
				t.Fatalf("after an answer: %v", err)
			}
			e.clock.Advance(time.Minute)
			if _, _, err := b.Challenge(ctx, "zed", "2001:db8::1"); err != nil {
				t.Fatalf("after the others expired: %v", err)
			}
		})
	}
}

// TestRenewalNonceIsNoLogin checks that a host renewal's challenge, for a
// host named as a user and signed by that user's key, does not log the
// user in: a challenge is bound to its purpose.
func TestRenewalNonceIsNoLogin(t *testing.T) {
	ctx := context.Background()
	e, l, zed := loginEnv(t)
	h := hostsOn(t, e)
	if _, err := h.Join(ctx, "", token(t, h, "zed", nil), hostKeyLine(testkit.Signer(t))); err != nil {
		t.Fatal(err)
	}
	nonce, _, err := h.RenewChallenge(ctx, "10.0.0.9", "zed")
	if err != nil {
		t.Fatal(err)
	}
	at := attempt(t, l, "zed", zed, func(at *grant.LoginAttempt, _ []byte) []byte {
		at.Nonce = nonce
		return loginMessage("zed", nonce)
	})
	_, err = l.Login(ctx, at)
	wantError(t, err, grant.KindUnauthenticated, grant.CodeBadChallenge)
}

// TestLoginFloodLeavesRenewals: unanswered key-login challenges, which
// anyone may ask for without a login (here from many IPv6 /64s, each up
// to its per-address bound, until the total refuses them), must not keep
// an enrolled host from renewing its certificate: each purpose has its own
// total.
func TestLoginFloodLeavesRenewals(t *testing.T) {
	ctx := context.Background()
	e, l, _ := loginEnv(t)
	h := hostsOn(t, e)
	key := testkit.Signer(t)
	if _, err := h.Join(ctx, "", token(t, h, "db1", nil), hostKeyLine(key)); err != nil {
		t.Fatal(err)
	}
	const addrs, per = 400, grant.MaxChallengesPerAddress
	var wg sync.WaitGroup
	var busy atomic.Int32
	for a := range addrs {
		wg.Go(func() {
			for range per {
				if _, _, err := l.Challenge(ctx, "nobody", fmt.Sprintf("[2001:db8:%x:%x::1]:1", a/256, a%256)); err != nil {
					busy.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Fatalf("%d addresses asked %d login challenges each and none was refused: the flood did not fill the login total", addrs, per)
	}
	nonce, _, err := h.RenewChallenge(ctx, "10.9.9.9", "db1")
	if err != nil {
		t.Fatalf("a host's renewal challenge during a flood of login challenges: %v", err)
	}
	s, err := key.Sign(nil, api.HostRenewMessage("db1", nonce, testFingerprint))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Renew(ctx, "10.9.9.9", "db1", nonce, base64.StdEncoding.EncodeToString(ssh.Marshal(s))); err != nil {
		t.Fatalf("renewal during the flood: %v", err)
	}
}

// TestRenewChallengeOnlyEnrolled: renewal challenges are given to enrolled
// hosts only, and a few per name (asking needs no login): an unknown name
// is refused not enrolled, a removed host gone, both recorded; a flood of
// asks for one host keeps only renewalsPerHost of them, the newest, so the
// host's own challenge, answered at once, still works.
func TestRenewChallengeOnlyEnrolled(t *testing.T) {
	ctx := context.Background()
	e, h := newHosts(t)
	key := testkit.Signer(t)
	for _, name := range []string{"db9", "web9"} {
		if _, err := h.Join(ctx, "", token(t, h, name, nil), hostKeyLine(key)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Remove(ctx, boss, "web9", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.RenewChallenge(ctx, "10.0.0.9", "nosuch")
	wantError(t, err, grant.KindNotFound, grant.CodeHostNotEnrolled)
	_, _, err = h.RenewChallenge(ctx, "10.0.0.9", "web9")
	wantError(t, err, grant.KindGone, grant.CodeHostRemoved)
	if evs := e.events(t, audit.EventFilter{Type: grant.EventHostRenewFailed}); len(evs) != 2 {
		t.Errorf("%d host.renew_failed events, want 2 (unknown, removed)", len(evs))
	}
	var first []string
	for i := range 3 * grant.RenewalsPerHost {
		e.clock.Advance(time.Second) // the oldest is the one that expires first
		nonce, _, err := h.RenewChallenge(ctx, fmt.Sprintf("10.0.%d.9", i), "db9")
		if err != nil {
			t.Fatalf("challenge %d for db9: %v", i, err)
		}
		if i < grant.RenewalsPerHost {
			first = append(first, nonce)
		}
	}
	for i, nonce := range first {
		s, _ := key.Sign(nil, api.HostRenewMessage("db9", nonce, testFingerprint))
		_, err = h.Renew(ctx, "", "db9", nonce, base64.StdEncoding.EncodeToString(ssh.Marshal(s)))
		wantError(t, err, grant.KindUnauthenticated, grant.CodeBadChallenge)
		if t.Failed() {
			t.Fatalf("challenge %d of %d, replaced by newer ones, still answered", i, 3*grant.RenewalsPerHost)
		}
	}
	e.clock.Advance(2 * time.Minute)
	if n, err := e.svc.ReapLoginFlows(ctx); err != nil || n != grant.RenewalsPerHost {
		t.Errorf("reaped %d challenges (%v) after %d asks for one host, want %d", n, err, 3*grant.RenewalsPerHost, grant.RenewalsPerHost)
	}
	nonce, sig := renewal(t, h, "db9", key)
	if _, err := h.Renew(ctx, "", "db9", nonce, sig); err != nil {
		t.Fatalf("the host's own renewal after the flood: %v", err)
	}
}

// BenchmarkKeyLogin measures a whole key login, challenge and answer,
// on each engine: the challenge's insert and spend are two of its store
// transactions, beside the token's.
func BenchmarkKeyLogin(b *testing.B) {
	ctx := context.Background()
	for _, eng := range replicaStores {
		b.Run(eng.name, func(b *testing.B) {
			e, _, zed := loginEnv(b)
			l, _, _ := replicaLogins(b, e, eng.target(b))
			for b.Loop() {
				if _, err := l.Login(ctx, attempt(b, l, "zed", zed, nil)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
