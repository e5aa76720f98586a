// Package tlspin is how jitssh names the API's TLS certificate: the pin
// that `jit login --fingerprint` takes and that the client checks on every
// connection instead of a certificate authority. The daemon prints it and
// the client compares it, so both sides must spell it the same way; that
// is all this package does, so that the engineer's binary can check a pin
// without linking the CA.
package tlspin

import (
	"crypto/sha256"
	"encoding/base64"
)

// Fingerprint returns the pin of a certificate in DER form:
// "SHA256:" and the unpadded standard base64 of its SHA-256, the form
// OpenSSH uses for key fingerprints.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
