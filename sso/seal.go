package sso

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Seal labels: each use of Seal derives its key with its own label, so a
// value sealed for one use never opens as another's.
const (
	// SealRefresh seals a provider's refresh token under the bearer
	// token of its login (package grant).
	SealRefresh = "jitssh-sso-refresh-key-v1"
	// sealFlow seals an SSO flow's secrets under the flow id.
	sealFlow = "jitssh-sso-flow-key-v1"
)

// Seal encrypts and authenticates plain (AES-256-GCM, a random nonce in
// front) under a key derived from secret, a bearer secret only its holder
// has (a token, a flow id), and label, binding aad (the row's key, the
// secret's hash) so that the sealed value opens only beside it. A copy of
// the database holds only the hash of secret, so it cannot open what is
// sealed.
func Seal(rand io.Reader, secret, label string, aad, plain []byte) ([]byte, error) {
	aead, err := sealAEAD(secret, label)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, aad), nil
}

// Open is the inverse of Seal: an error when sealed was not sealed under
// secret, label and aad, or was changed.
func Open(secret, label string, aad, sealed []byte) ([]byte, error) {
	aead, err := sealAEAD(secret, label)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value is too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("sealed value does not open with this secret")
	}
	return plain, nil
}

func sealAEAD(secret, label string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(label))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
