package ca

import (
	"bytes"
	"crypto/elliptic"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestParseRequestKeyIsTheSharedRule checks that the CA applies sshkey's
// rule (sshkey's own tests cover the rule in detail): a key that passes is
// returned intact, and each kind of refusal reaches the caller.
func TestParseRequestKeyIsTheSharedRule(t *testing.T) {
	ed := testkit.Signer(t).PublicKey()
	tests := []struct {
		name    string
		text    string
		wantErr string
	}{
		{name: "ed25519", text: PublicKeyLine(ed, "alice@laptop")},
		{name: "rsa 1024", text: PublicKeyLine(rsaPublic(t, 1024), "c"), wantErr: "rsa key of 1024 bits; want 2048 to 8192 bits"},
		{name: "rsa 9000", text: keyLine("ssh-rsa", rsaBlob(t, 9000)), wantErr: "rsa key of 9000 bits"},
		{name: "dsa", text: keyLine("ssh-dss", dsaBlob()), wantErr: "DSA keys are not accepted"},
		{name: "private key", text: privatePEM(t, ""), wantErr: "this is a private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequestKey(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("ParseRequestKey = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequestKey: %v", err)
			}
			if !bytes.Equal(got.Marshal(), ed.Marshal()) {
				t.Fatal("parsed key differs from the submitted one")
			}
		})
	}
}

// TestCheckKeyRefusesWhatTheRuleRefuses: the CA's signing paths check keys
// they did not parse (a CA key, a host key) with the same rule.
func TestCheckKeyRefusesWhatTheRuleRefuses(t *testing.T) {
	weak := rsaPublic(t, 1024)
	if err := checkKey(weak); err == nil || !strings.Contains(err.Error(), "rsa key of 1024 bits") {
		t.Fatalf("checkKey(rsa 1024) = %v", err)
	}
	if err := checkKey(ecdsaPublic(t, elliptic.P256())); err != nil {
		t.Fatalf("checkKey(ecdsa p256) = %v", err)
	}
}
