package grant_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// TestForgetUserDropsCachedTokens: a token another replica deleted is
// trusted from the cache until the change feed says ForgetUser; then the
// store is asked at once and the token refused. Other users' cached
// tokens stay.
func TestForgetUserDropsCachedTokens(t *testing.T) {
	e, l, zed := loginEnv(t)
	ctx := context.Background()
	tok, err := l.Login(ctx, attempt(t, l, "zed", zed, nil))
	if err != nil {
		t.Fatal(err)
	}
	if user, err := l.Authenticate(ctx, tok.Token); err != nil || user != "zed" {
		t.Fatalf("Authenticate = %q, %v", user, err)
	}
	sum := sha256.Sum256([]byte(tok.Token))
	if err := e.store.Do(ctx, func(tx *audit.Tx) error { return tx.DeleteToken(hex.EncodeToString(sum[:])) }); err != nil {
		t.Fatal(err)
	}
	l.ForgetUser("someone-else")
	if user, err := l.Authenticate(ctx, tok.Token); err != nil || user != "zed" {
		t.Fatalf("after forgetting another user: Authenticate = %q, %v; want the cached zed", user, err)
	}
	l.ForgetUser("zed")
	_, err = l.Authenticate(ctx, tok.Token)
	wantError(t, err, grant.KindUnauthenticated, grant.CodeUnauthenticated)
}
