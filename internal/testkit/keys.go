package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SignerPEM returns a fresh ed25519 signer and its private key in
// unencrypted OpenSSH PEM form carrying comment, as ssh-keygen writes it
// and as `ssh -i` and `jit login -i` read it. It fails t if the key cannot
// be made.
func SignerPEM(t testing.TB, comment string) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate ed25519 key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatalf("marshal ed25519 key: %v", err)
	}
	return signerOf(t, priv), pem.EncodeToMemory(block)
}

// RSAPublic returns the public half of a fresh RSA key of bits bits, for
// tests of key-size rules; it fails t if the key cannot be made.
func RSAPublic(t testing.TB, bits int) ssh.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("generate rsa %d key: %v", bits, err)
	}
	return signerOf(t, k).PublicKey()
}

// ECDSAPublic returns the public half of a fresh ECDSA key on curve c; it
// fails t if the key cannot be made.
func ECDSAPublic(t testing.TB, c elliptic.Curve) ssh.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatalf("generate ecdsa %s key: %v", c.Params().Name, err)
	}
	return signerOf(t, k).PublicKey()
}

func signerOf(t testing.TB, priv crypto.Signer) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("ssh signer of %T: %v", priv, err)
	}
	return s
}

// PublicKeyFile writes the public half of a fresh ed25519 key to path in
// authorized_keys form (0644), as ssh-keygen writes a .pub file, and
// returns it; it fails t if the key cannot be made or written.
func PublicKeyFile(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	k := Signer(t).PublicKey()
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(k), 0o644); err != nil {
		t.Fatalf("write public key: %v", err)
	}
	return k
}
