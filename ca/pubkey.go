package ca

import (
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/sshkey"
)

// checkKey applies jitssh's one key rule, sshkey.Check, to a key the CA
// will certify or sign with.
func checkKey(k ssh.PublicKey) error { return sshkey.Check(k) }

// Fingerprint returns the OpenSSH SHA-256 fingerprint of k, "SHA256:...".
func Fingerprint(k ssh.PublicKey) string {
	return ssh.FingerprintSHA256(k)
}

// PublicKeyLine returns k as one authorized_keys line, "TYPE BASE64 COMMENT",
// without a trailing newline. Control characters in comment become spaces;
// an empty comment is left out.
func PublicKeyLine(k ssh.PublicKey, comment string) string {
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
	comment = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, comment))
	if comment == "" {
		return line
	}
	return line + " " + comment
}
