package grant

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestParseSignatureRefusesSHA1: the signatures of logins and host
// renewals are SHA-2 or ed25519; an RSA key's ssh-rsa (SHA-1) signature is
// refused, as OpenSSH refuses it.
func TestParseSignatureRefusesSHA1(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	as := rsaSigner.(ssh.AlgorithmSigner)
	msg := []byte("message")
	tests := []struct {
		name    string
		sign    func() (*ssh.Signature, error)
		wantErr string
	}{
		{name: "ed25519", sign: func() (*ssh.Signature, error) { return testkit.Signer(t).Sign(rand.Reader, msg) }},
		{name: "rsa-sha2-512", sign: func() (*ssh.Signature, error) { return as.SignWithAlgorithm(rand.Reader, msg, ssh.KeyAlgoRSASHA512) }},
		{name: "rsa-sha2-256", sign: func() (*ssh.Signature, error) { return as.SignWithAlgorithm(rand.Reader, msg, ssh.KeyAlgoRSASHA256) }},
		{name: "ssh-rsa (SHA-1)", sign: func() (*ssh.Signature, error) { return as.SignWithAlgorithm(rand.Reader, msg, ssh.KeyAlgoRSA) }, wantErr: "SHA-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := tt.sign()
			if err != nil {
				t.Fatal(err)
			}
			_, err = parseSignature(base64.StdEncoding.EncodeToString(ssh.Marshal(sig)))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("parseSignature = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
