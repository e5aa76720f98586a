package grant

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// TestSealRefresh checks that the stored form of a refresh token holds no
// plaintext and opens only with the bearer token it was sealed for.
func TestSealRefresh(t *testing.T) {
	token, other := "jit_token-one", "jit_token-two"
	hash := hashToken(token)
	sealed, err := sealRefresh(rand.Reader, token, hash, "refresh-secret-value")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-secret-value")) {
		t.Fatal("the sealed refresh token holds the plaintext")
	}
	if got, err := unsealRefresh(token, hash, sealed); err != nil || got != "refresh-secret-value" {
		t.Fatalf("unseal: %q %v", got, err)
	}
	if _, err := unsealRefresh(other, hash, sealed); err == nil {
		t.Fatal("another bearer token opened the refresh token")
	}
	if _, err := unsealRefresh(token, hashToken(other), sealed); err == nil {
		t.Fatal("the refresh token opened under another token hash")
	}
	if s, err := sealRefresh(rand.Reader, token, hash, ""); err != nil || s != nil {
		t.Fatalf("no refresh token must seal to nothing: %v %v", s, err)
	}
}

// TestUnsealRefreshKnownAnswer opens a refresh token sealed by the code
// before the sealing moved to package sso (the flows step): grant's own
// refreshAEAD, HMAC-SHA256 of the bearer token over
// "jitssh-sso-refresh-key-v1" as the AES-256-GCM key, the token's hash as
// the additional data and the nonce in front (here a fixed nonce, so the
// vector is fixed). Logins made before an upgrade must still refresh.
func TestUnsealRefreshKnownAnswer(t *testing.T) {
	const (
		token  = "jit_knownanswerknownanswerknownanswerknowna"
		hash   = "4cb3e4fc4ece912402f9d8ffa70f9320094e2729280490a3159004ec32c863df"
		sealed = "66697865642d6e6f6e63652181268dbbbcc0cdb62b69e935abde16afee6b2ef6248ece7bf3dafde90bcad0b11970432396c3a8fb101b01f3a15ae9"
	)
	if got := hashToken(token); got != hash {
		t.Fatalf("hash of the token %s, want %s", got, hash)
	}
	b, err := hex.DecodeString(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := unsealRefresh(token, hash, b); err != nil || got != "rt-sealed-before-the-flows-step" {
		t.Fatalf("a refresh token sealed before the flows step opens as %q, %v", got, err)
	}
}
