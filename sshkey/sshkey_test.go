package sshkey

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

func TestParseAuthorized(t *testing.T) {
	ed := testkit.Signer(t).PublicKey()
	edB64 := base64.StdEncoding.EncodeToString(ed.Marshal())
	edLine := "ssh-ed25519 " + edB64 + " alice@laptop"
	rsa2048 := testkit.RSAPublic(t, 2048)
	signed := userCert(t, ed)
	_, private := testkit.SignerPEM(t, "")

	tests := []struct {
		name     string
		text     string
		wantType string // on success
		wantErr  string // substring; "" means accepted
	}{
		{name: "ed25519 with comment", text: edLine, wantType: ssh.KeyAlgoED25519},
		{name: "ed25519 without comment", text: "ssh-ed25519 " + edB64, wantType: ssh.KeyAlgoED25519},
		{name: "ed25519 with trailing newline", text: edLine + "\n", wantType: ssh.KeyAlgoED25519},
		{name: "ed25519 comment with spaces", text: edLine + " more words", wantType: ssh.KeyAlgoED25519},
		{name: "ecdsa p256", text: line(testkit.ECDSAPublic(t, elliptic.P256())), wantType: ssh.KeyAlgoECDSA256},
		{name: "ecdsa p384", text: line(testkit.ECDSAPublic(t, elliptic.P384())), wantType: ssh.KeyAlgoECDSA384},
		{name: "ecdsa p521", text: line(testkit.ECDSAPublic(t, elliptic.P521())), wantType: ssh.KeyAlgoECDSA521},
		{name: "rsa 2048", text: line(rsa2048), wantType: ssh.KeyAlgoRSA},
		{name: "rsa 8192 crafted", text: keyLine("ssh-rsa", rsaBlob(t, 8192)), wantType: ssh.KeyAlgoRSA},
		{name: "sk ed25519", text: keyLine(ssh.KeyAlgoSKED25519, skEd25519Blob(t)), wantType: ssh.KeyAlgoSKED25519},
		{name: "sk ecdsa p256", text: keyLine(ssh.KeyAlgoSKECDSA256, skECDSABlob(t)), wantType: ssh.KeyAlgoSKECDSA256},

		{name: "empty", text: " \n", wantErr: "public key: empty"},
		{name: "bad base64", text: "ssh-ed25519 AAAA!!!! c", wantErr: "public key: illegal base64 data"},
		{name: "base64 with non-zero padding bits", text: "ssh-ed25519 " + edB64[:len(edB64)-2] + "B=", wantErr: "illegal base64 data"},
		{name: "key data missing", text: "ssh-ed25519", wantErr: "key data missing"},
		{name: "trailing bytes after blob", text: keyLine("ssh-ed25519", append(ed.Marshal(), 0, 0, 0, 0)), wantErr: "4 trailing bytes after the key data"},
		{name: "truncated blob", text: keyLine("ssh-ed25519", ed.Marshal()[:20]), wantErr: "key data truncated"},
		{name: "type mismatch", text: keyLine("ecdsa-sha2-nistp256", ed.Marshal()), wantErr: `type "ecdsa-sha2-nistp256" does not match "ssh-ed25519"`},
		{name: "certificate", text: string(ssh.MarshalAuthorizedKey(signed)), wantErr: "public key is a certificate; send the plain key"},
		{name: "certificate blob under plain type", text: keyLine("ssh-ed25519", signed.Marshal()), wantErr: "public key is a certificate"},
		{name: "openssh private key", text: string(private), wantErr: "this is a private key; send the .pub file"},
		{name: "pem rsa private key", text: "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n", wantErr: "this is a private key"},
		{name: "putty private key", text: "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", wantErr: "this is a private key"},
		{name: "rfc 4716 public key", text: "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n", wantErr: "RFC 4716"},
		{name: "dsa", text: keyLine("ssh-dss", dsaBlob()), wantErr: "DSA keys are not accepted"},
		{name: "rsa 1024", text: line(testkit.RSAPublic(t, 1024)), wantErr: "rsa key of 1024 bits; want 2048 to 8192 bits"},
		{name: "rsa 2047 crafted", text: keyLine("ssh-rsa", rsaBlob(t, 2047)), wantErr: "rsa key of 2047 bits"},
		{name: "rsa 9000 crafted", text: keyLine("ssh-rsa", rsaBlob(t, 9000)), wantErr: "rsa key of 9000 bits"},
		{name: "unknown type", text: "ssh-foo " + edB64, wantErr: `unknown key type "ssh-foo"`},
		{name: "ml-dsa is not accepted", text: "ssh-mldsa-44 " + edB64, wantErr: `unknown key type "ssh-mldsa-44"`},
		{name: "options before the key", text: `command="/bin/ls" ` + edLine, wantErr: "options are not allowed"},
		{name: "flag option before the key", text: "no-pty " + edLine, wantErr: "options are not allowed"},
		{name: "two keys on two lines", text: edLine + "\n" + edLine, wantErr: "more than one line"},
		{name: "carriage return inside", text: "ssh-ed25519 " + edB64 + "\rx", wantErr: "more than one line"},
		{name: "nul byte", text: edLine + "\x00", wantErr: "NUL"},
		{name: "too long", text: edLine + " " + strings.Repeat("c", 20000), wantErr: "too long"},
		{name: "non-canonical mpint", text: keyLine("ssh-rsa", nonCanonical(rsa2048)), wantErr: "not in canonical encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthorized(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseAuthorized error %v, want it to contain %q", err, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("ParseAuthorized returned a key with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAuthorized: %v", err)
			}
			if got.Type() != tt.wantType {
				t.Fatalf("type %q, want %q", got.Type(), tt.wantType)
			}
			fields := strings.Fields(tt.text)
			blob, _ := base64.StdEncoding.DecodeString(fields[1])
			if !bytes.Equal(got.Marshal(), blob) {
				t.Fatal("parsed key does not marshal to the submitted blob")
			}
		})
	}
}

// nonCanonical re-encodes an RSA key with a needless leading zero byte in the
// exponent mpint.
func nonCanonical(k ssh.PublicKey) []byte {
	rk := k.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
	return wireBlob(wireString([]byte("ssh-rsa")), wireString([]byte{0, 1, 0, 1}), wireMPInt(rk.N))
}

// TestCheck covers keys that reach Check without the text parser: keys
// x/crypto parsed, and certificates.
func TestCheck(t *testing.T) {
	ed := testkit.Signer(t).PublicKey()
	tests := []struct {
		name    string
		key     ssh.PublicKey
		wantErr string
	}{
		{name: "ed25519", key: ed},
		{name: "ecdsa p256", key: testkit.ECDSAPublic(t, elliptic.P256())},
		{name: "rsa 2048", key: testkit.RSAPublic(t, 2048)},
		{name: "rsa 1024", key: testkit.RSAPublic(t, 1024), wantErr: "rsa key of 1024 bits; want 2048 to 8192 bits"},
		{name: "certificate", key: userCert(t, ed), wantErr: "public key is a certificate"},
		{name: "nil", key: nil, wantErr: "public key: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.key)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
