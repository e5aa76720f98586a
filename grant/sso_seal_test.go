package grant

import (
	"bytes"
	"crypto/rand"
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
