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

// TestSSORefreshClaimedAcrossReplicas: while one replica's refresh of a
// token is at the provider (here one that accepts the connection and
// never answers), another replica's refresh of the same token is refused
// busy without reaching the provider, and the token is kept: a provider
// that rotates refresh tokens with reuse detection would otherwise see
// the same refresh token twice and revoke the person's chain.
func TestSSORefreshClaimedAcrossReplicas(t *testing.T) {
	for _, eng := range replicaStores {
		t.Run(eng.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan net.Conn, 4)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()
			t.Cleanup(func() { ln.Close() })
			cfg, err := sso.ParseConfig("sso.yaml", []byte("providers:\n  - name: corp\n    issuer: https://"+ln.Addr().String()+"\n    client_id: jitssh\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			e.pol.Store(e.pol.Load().WithSSOUsers([]policy.User{{Name: "erin", Groups: []string{"dev"}}}))
			target := eng.target(t)
			var replicas []*grant.Logins
			for range 2 {
				s := openTarget(t, target)
				rp, err := sso.New(cfg, sso.Options{Store: s})
				if err != nil {
					t.Fatal(err)
				}
				l, err := grant.NewLogins(grant.LoginConfig{Store: s, Policy: e.pol.Load, Message: loginMessage, TokenTTL: time.Hour, Clock: e.clock.Now, SSO: rp})
				if err != nil {
					t.Fatal(err)
				}
				replicas = append(replicas, l)
			}
			now := e.clock.Now()
			token := "jit_ssotesttokenssotesttokenssotesttokenxx"
			sum := sha256.Sum256([]byte(token))
			hash := hex.EncodeToString(sum[:])
			if err := openTarget(t, target).Do(ctx, func(tx *audit.Tx) error {
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
			first := make(chan error, 1)
			go func() { _, err := replicas[0].SSORefresh(ctx, token, "10.0.0.9"); first <- err }()
			var held net.Conn
			select {
			case held = <-accepted: // the first refresh is at the provider
			case err := <-first:
				t.Fatalf("the first refresh ended before reaching the provider: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the first refresh never reached the provider")
			}
			_, err = replicas[1].SSORefresh(ctx, token, "10.0.0.8")
			var ge *grant.Error
			if !errors.As(err, &ge) || ge.Kind != grant.KindUnavailable || ge.Code != sso.CodeBusy {
				t.Fatalf("a refresh at the other replica during the first: %v, want unavailable %s", err, sso.CodeBusy)
			}
			select {
			case c := <-accepted:
				c.Close()
				t.Fatal("the second refresh reached the provider too")
			default:
			}
			held.Close()
			if err := <-first; err == nil {
				t.Fatal("the first refresh succeeded against a provider that closed the connection")
			}
			if user, err := replicas[1].Authenticate(ctx, token); err != nil || user != "erin" {
				t.Fatalf("the token after both refreshes failed in passing: %q, %v", user, err)
			}
		})
	}
}
