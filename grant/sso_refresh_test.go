package grant_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sso"
)

// TestSSORefreshProviderDownKeepsToken checks that a refresh that fails
// because the provider cannot be reached answers sso_provider_failed
// (503) and leaves the token and the identity's groups as they were.
func TestSSORefreshProviderDownKeepsToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg, err := sso.ParseConfig("sso.yaml", []byte("providers:\n  - name: corp\n    issuer: "+down+"\n    client_id: jitssh\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := sso.New(cfg, sso.Options{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	e.pol.Store(e.pol.Load().WithSSOUsers([]policy.User{{Name: "erin", Groups: []string{"dev"}}}))
	l, err := grant.NewLogins(grant.LoginConfig{Store: e.store, Policy: e.pol.Load, Message: loginMessage, TokenTTL: time.Hour, Clock: e.clock.Now, SSO: rp})
	if err != nil {
		t.Fatal(err)
	}
	token := "jit_ssotesttokenssotesttokenssotesttokenxx"
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	if err := e.store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.InsertToken(audit.Token{Hash: hash, User: "erin", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			return err
		}
		if err := tx.PutSSOIdentity(audit.SSOIdentity{Name: "erin", Provider: "corp", Subject: "s-erin", Groups: []string{"eng"}, ExpiresAt: now.Add(time.Hour), UpdatedAt: now}); err != nil {
			return err
		}
		return tx.InsertSSOLogin(audit.SSOLogin{TokenHash: hash, Name: "erin", Provider: "corp", Subject: "s-erin", ExpiresAt: now.Add(time.Hour)})
	}); err != nil {
		t.Fatal(err)
	}
	_, err = l.SSORefresh(ctx, token, "10.0.0.9")
	var ge *grant.Error
	if !errors.As(err, &ge) || ge.Kind != grant.KindUnavailable || ge.Code != sso.CodeProviderFailed {
		t.Fatalf("refresh with the provider down: %v, want unavailable %s", err, sso.CodeProviderFailed)
	}
	if user, err := l.Authenticate(ctx, token); err != nil || user != "erin" {
		t.Fatalf("the token after a transient failure: %q, %v", user, err)
	}
	var id audit.SSOIdentity
	if err := e.store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		id, err = tx.SSOIdentity("erin")
		return err
	}); err != nil || len(id.Groups) != 1 {
		t.Fatalf("identity after a transient failure: %+v, %v", id, err)
	}
}
