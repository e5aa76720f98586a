// Package sshkey is jitssh's one rule for the public keys it accepts: which
// types, which RSA sizes, and the strict one-line form in which engineers,
// administrators and the policy file submit them. The CA, the API and the
// policy parser all apply this rule, so a key one of them accepts the others
// accept too. It does no I/O.
package sshkey

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// RSA modulus bounds: below MinRSABits is too weak, above MaxRSABits costs a
// verifier more than any key is worth.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// keyAlgoDSA is named here because x/crypto deprecates its constant; we only
// need the name to refuse such keys with a clear message.
const keyAlgoDSA = "ssh-dss"

// MaxTextLen bounds the submitted text: an 8192-bit RSA key line is about
// 1.4 kB, so anything longer is not one key.
const MaxTextLen = 16 << 10

// wireFields is the number of length-prefixed strings in the public key
// blob of each accepted type, the type name included; 0 means the type is
// not accepted.
func wireFields(keyType string) int {
	switch keyType {
	case ssh.KeyAlgoED25519:
		return 2 // name, key
	case ssh.KeyAlgoRSA:
		return 3 // name, e, n
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return 3 // name, curve, point
	case ssh.KeyAlgoSKED25519:
		return 3 // name, key, application
	case ssh.KeyAlgoSKECDSA256:
		return 4 // name, curve, point, application
	}
	return 0
}

// Check reports whether k is a key jitssh will certify, trust or use: a
// plain (not certificate) ssh-ed25519, ecdsa-sha2-nistp256/384/521,
// sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com key, or
// an ssh-rsa key of MinRSABits to MaxRSABits bits. The error names the
// problem and begins with "public key".
func Check(k ssh.PublicKey) error {
	if k == nil {
		return errors.New("public key: missing")
	}
	if err := checkTypeName(k.Type()); err != nil {
		return err
	}
	if k.Type() != ssh.KeyAlgoRSA {
		return nil
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return errors.New("public key: rsa key without a modulus")
	}
	rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
	if !ok {
		return errors.New("public key: rsa key without a modulus")
	}
	if bits := rk.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
		return fmt.Errorf("public key: rsa key of %d bits; want %d to %d bits", bits, MinRSABits, MaxRSABits)
	}
	return nil
}

// ParseAuthorized parses exactly one authorized_keys line "TYPE BASE64
// [COMMENT]" without options, surrounding white space allowed. The key must
// pass Check and be in canonical encoding with nothing after the key blob.
// It refuses certificates, pasted private keys, the RFC 4716 form, several
// lines, NUL bytes and texts over MaxTextLen; errors say which, and begin
// with "public key" or "this is a private key".
func ParseAuthorized(text string) (ssh.PublicKey, error) {
	line, err := oneLine(text)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(line)
	keyType := fields[0]
	if err := checkTypeName(keyType); err != nil {
		for _, f := range fields[1:] {
			if checkTypeName(f) == nil {
				return nil, errors.New("public key: options are not allowed; send the plain line from the .pub file")
			}
		}
		return nil, err
	}
	if len(fields) < 2 {
		return nil, fmt.Errorf("public key: %s key data missing", keyType)
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(fields[1])
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return parseBlob(keyType, blob)
}

// oneLine returns text trimmed, or why it is not one public key line.
func oneLine(text string) (string, error) {
	if len(text) > MaxTextLen {
		return "", fmt.Errorf("public key: %d bytes is too long", len(text))
	}
	if strings.Contains(text, "PRIVATE KEY-----") || strings.HasPrefix(strings.TrimSpace(text), "PuTTY-User-Key-File") {
		return "", errors.New("this is a private key; send the .pub file")
	}
	if strings.Contains(text, "BEGIN SSH2 PUBLIC KEY") {
		return "", errors.New("public key: RFC 4716 format; send the one-line OpenSSH form (ssh-keygen -i -f FILE)")
	}
	line := strings.TrimSpace(text)
	switch {
	case line == "":
		return "", errors.New("public key: empty")
	case strings.ContainsAny(line, "\r\n"):
		return "", errors.New("public key: more than one line; send one key")
	case strings.ContainsRune(line, 0):
		return "", errors.New("public key: contains a NUL byte")
	}
	return line, nil
}

// checkTypeName says whether name is an accepted key type, and if not, why.
func checkTypeName(name string) error {
	switch {
	case wireFields(name) > 0:
		return nil
	case strings.HasSuffix(name, "-cert-v01@openssh.com"):
		return errors.New("public key is a certificate; send the plain key")
	case name == keyAlgoDSA:
		return errors.New("public key: DSA keys are not accepted; use ed25519")
	}
	return fmt.Errorf("public key: unknown key type %q", name)
}

// parseBlob parses the wire form of a public key whose text form named
// keyType, and applies Check.
func parseBlob(keyType string, blob []byte) (ssh.PublicKey, error) {
	name, _, ok := readString(blob)
	if !ok {
		return nil, errors.New("public key: key data too short")
	}
	if string(name) != keyType {
		if err := checkTypeName(string(name)); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("public key: type %q does not match %q inside the key data", keyType, name)
	}
	n, err := blobLen(blob, wireFields(keyType))
	if err != nil {
		return nil, err
	}
	if n < len(blob) {
		return nil, fmt.Errorf("public key: %d trailing bytes after the key data", len(blob)-n)
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("public key: %s: %w", keyType, err)
	}
	// x/crypto accepts some non-canonical forms (an mpint with a needless
	// leading zero); one key must have one encoding, or the policy's
	// one-owner-per-key rule could be dodged.
	if !bytes.Equal(pub.Marshal(), blob) {
		return nil, fmt.Errorf("public key: %s key data is not in canonical encoding", keyType)
	}
	if err := Check(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// blobLen returns the length of the first fields length-prefixed strings of
// blob.
func blobLen(blob []byte, fields int) (int, error) {
	rest := blob
	for range fields {
		var ok bool
		if _, rest, ok = readString(rest); !ok {
			return 0, errors.New("public key: key data truncated")
		}
	}
	return len(blob) - len(rest), nil
}

func readString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}
