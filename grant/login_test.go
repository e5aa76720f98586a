package grant_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/policy"
)

func loginMessage(user, nonce string) []byte {
	return []byte("test-login\n" + user + "\n" + nonce + "\n")
}

// loginEnv is Logins over the grant test env, with zed enrolled with key.
func loginEnv(t testing.TB) (*env, *grant.Logins, ssh.Signer) {
	t.Helper()
	e := newEnv(t)
	signer := testkit.Signer(t)
	e.pol.Store(e.pol.Load().WithUsers([]policy.User{{Name: "zed", Groups: []string{"dev"}, Keys: []ssh.PublicKey{signer.PublicKey()}}}))
	l, err := grant.NewLogins(grant.LoginConfig{Store: e.store, Policy: e.pol.Load, Message: loginMessage, TokenTTL: time.Hour, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e, l, signer
}

// attempt answers a fresh challenge for user, signing what sign is given.
func attempt(t testing.TB, l *grant.Logins, user string, s ssh.Signer, edit func(*grant.LoginAttempt, []byte) []byte) grant.LoginAttempt {
	t.Helper()
	nonce, _, err := l.Challenge(context.Background(), user, "10.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	at := grant.LoginAttempt{User: user, Nonce: nonce, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))), ClientAddr: "10.0.0.9"}
	msg := loginMessage(user, nonce)
	if edit != nil {
		msg = edit(&at, msg)
	}
	sig, err := s.Sign(rand.Reader, msg)
	if err != nil {
		t.Fatal(err)
	}
	at.Signature = base64.StdEncoding.EncodeToString(ssh.Marshal(sig))
	return at
}

// TestLoginOutcomesRecorded checks each login outcome's kind and code and
// that the domain records it exactly once.
func TestLoginOutcomesRecorded(t *testing.T) {
	e, l, zed := loginEnv(t)
	other := testkit.Signer(t)
	shared := testkit.Signer(t)
	// A store written before the one-owner rule: yan and yara hold one key.
	e.pol.Store(e.pol.Load().WithUsers([]policy.User{
		{Name: "yan", Groups: []string{"dev"}, Keys: []ssh.PublicKey{shared.PublicKey()}},
		{Name: "yara", Groups: []string{"dev"}, Keys: []ssh.PublicKey{shared.PublicKey()}},
	}))
	tests := []struct {
		name string
		user string
		key  ssh.Signer
		edit func(*grant.LoginAttempt, []byte) []byte
		kind grant.Kind
		code string
	}{
		{name: "ok", user: "zed", key: zed, code: "ok"},
		{name: "short token", user: "zed", key: zed, edit: func(a *grant.LoginAttempt, m []byte) []byte { a.TTL = "10m"; return m }, code: "ok"},
		{name: "nonce of another user", user: "zed", key: zed, edit: func(a *grant.LoginAttempt, m []byte) []byte { a.User = "alice"; return m },
			kind: grant.KindUnauthenticated, code: grant.CodeBadChallenge},
		{name: "unknown nonce", user: "zed", key: zed, edit: func(a *grant.LoginAttempt, m []byte) []byte { a.Nonce = "forged"; return m },
			kind: grant.KindUnauthenticated, code: grant.CodeBadChallenge},
		{name: "bad key text", user: "zed", key: zed, edit: func(a *grant.LoginAttempt, m []byte) []byte { a.PublicKey = "ssh-ed25519 !!"; return m },
			kind: grant.KindInvalid, code: grant.CodeInvalidPublicKey},
		{name: "unknown user", user: "mallory", key: other, kind: grant.KindUnauthenticated, code: "unknown_user"},
		{name: "key not enrolled", user: "zed", key: other, kind: grant.KindUnauthenticated, code: grant.CodeKeyNotEnrolled},
		{name: "key several users hold", user: "yan", key: shared, kind: grant.KindUnauthenticated, code: grant.CodeKeyShared},
		{name: "key several users hold, bad signature", user: "yara", key: shared, edit: func(_ *grant.LoginAttempt, m []byte) []byte { return append(m, 'x') },
			kind: grant.KindUnauthenticated, code: grant.CodeBadSignature},
		{name: "signature over something else", user: "zed", key: zed, edit: func(_ *grant.LoginAttempt, m []byte) []byte { return append(m, 'x') },
			kind: grant.KindUnauthenticated, code: grant.CodeBadSignature},
		{name: "ttl too long", user: "zed", key: zed, edit: func(a *grant.LoginAttempt, m []byte) []byte { a.TTL = "2h"; return m },
			kind: grant.KindInvalid, code: "ttl_too_long"},
		{name: "ttl not a duration", user: "zed", key: zed, edit: func(a *grant.LoginAttempt, m []byte) []byte { a.TTL = "soon"; return m },
			kind: grant.KindInvalid, code: "ttl_invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.events(t, audit.EventFilter{})
			at := attempt(t, l, tc.user, tc.key, tc.edit)
			tok, err := l.Login(context.Background(), at)
			evs := e.events(t, audit.EventFilter{AfterSeq: int64(len(before))})
			if tc.code == "ok" {
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != 1 || evs[0].Type != "login" || evs[0].User != "zed" || evs[0].ClientAddr != "10.0.0.9" {
					t.Errorf("events = %+v, want one login", evs)
				}
				if !strings.HasPrefix(tok.Token, "jit_") || !tok.ExpiresAt.After(e.clock.Now()) {
					t.Errorf("token = %+v", tok)
				}
				return
			}
			wantError(t, err, tc.kind, tc.code)
			if len(evs) != 1 || evs[0].Type != "login.failed" || evs[0].Code != tc.code {
				t.Errorf("events = %+v, want one login.failed %s", evs, tc.code)
			}
		})
	}
	t.Run("challenge is spent", func(t *testing.T) {
		at := attempt(t, l, "zed", zed, nil)
		if _, err := l.Login(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		_, err := l.Login(context.Background(), at)
		wantError(t, err, grant.KindUnauthenticated, grant.CodeBadChallenge)
	})
}

// TestAuthenticate checks the token's life, the 30 s cache of a token found
// in the store, and that a user removed from the policy is refused at once.
func TestAuthenticate(t *testing.T) {
	e, l, zed := loginEnv(t)
	ctx := context.Background()
	tok, err := l.Login(ctx, attempt(t, l, "zed", zed, func(a *grant.LoginAttempt, m []byte) []byte { a.TTL = "2m"; return m }))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name, token, want string) {
		t.Helper()
		user, err := l.Authenticate(ctx, token)
		if want != "" {
			if err != nil || user != want {
				t.Errorf("%s: Authenticate = %q, %v, want %q", name, user, err, want)
			}
			return
		}
		wantError(t, err, grant.KindUnauthenticated, grant.CodeUnauthenticated)
	}
	check("fresh token", tok.Token, "zed")
	check("no token", "", "")
	check("no prefix", strings.TrimPrefix(tok.Token, "jit_"), "")
	check("forged", "jit_"+strings.Repeat("A", 43), "")

	// Deleting the row is not how tokens end, but it shows when the store is
	// asked: not again within 30 s of the last time.
	sum := sha256.Sum256([]byte(tok.Token))
	if err := e.store.Do(ctx, func(tx *audit.Tx) error { return tx.DeleteToken(hex.EncodeToString(sum[:])) }); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(29 * time.Second)
	check("cached for 30 s", tok.Token, "zed")
	e.clock.Advance(2 * time.Second)
	check("asked again after 30 s", tok.Token, "")

	tok, err = l.Login(ctx, attempt(t, l, "zed", zed, func(a *grant.LoginAttempt, m []byte) []byte { a.TTL = "2m"; return m }))
	if err != nil {
		t.Fatal(err)
	}
	check("second token", tok.Token, "zed")
	saved := e.pol.Load()
	e.pol.Store(parsePolicy(t))
	check("user removed", tok.Token, "")
	e.pol.Store(saved)
	e.clock.Advance(2 * time.Minute)
	check("expired", tok.Token, "")
}
