package ca

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// RSA modulus bounds for keys jitssh certifies or uses.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// keyAlgoDSA is named here because x/crypto deprecates its constant; we only
// need the name to refuse such keys with a clear message.
const keyAlgoDSA = "ssh-dss"

// maxRequestKeyLen bounds the submitted text: an 8192-bit RSA key line is
// about 1.4 kB.
const maxRequestKeyLen = 16 << 10

// wireFields is the number of length-prefixed strings in the public key
// blob of each accepted type, the type name included.
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

// ParseRequestKey parses a public key submitted by a client: exactly one
// authorized_keys line "TYPE BASE64 [COMMENT]" without options. It accepts
// ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of 2048 to 8192 bits,
// sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com, in
// canonical encoding with nothing after the key blob. It refuses
// certificates, pasted private keys, DSA and any other type; errors say
// which.
func ParseRequestKey(text string) (ssh.PublicKey, error) {
	if len(text) > maxRequestKeyLen {
		return nil, fmt.Errorf("public key: %d bytes is too long", len(text))
	}
	if strings.Contains(text, "PRIVATE KEY-----") || strings.HasPrefix(strings.TrimSpace(text), "PuTTY-User-Key-File") {
		return nil, errors.New("this is a private key; send the .pub file")
	}
	if strings.Contains(text, "BEGIN SSH2 PUBLIC KEY") {
		return nil, errors.New("public key: RFC 4716 format; send the one-line OpenSSH form (ssh-keygen -i -f FILE)")
	}
	line := strings.TrimSpace(text)
	if line == "" {
		return nil, errors.New("public key: empty")
	}
	if strings.ContainsAny(line, "\r\n") {
		return nil, errors.New("public key: more than one line; send one key")
	}
	if strings.ContainsRune(line, 0) {
		return nil, errors.New("public key: contains a NUL byte")
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
	return parseKeyBlob(keyType, blob)
}

// checkTypeName says whether name is a key type ParseRequestKey accepts, and
// if not, why.
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

// parseKeyBlob parses the wire form of a public key whose text form named
// keyType, and applies the size rules of checkKey.
func parseKeyBlob(keyType string, blob []byte) (ssh.PublicKey, error) {
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
	n, err := keyBlobLen(blob, wireFields(keyType))
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
	if !bytes.Equal(pub.Marshal(), blob) {
		return nil, fmt.Errorf("public key: %s key data is not in canonical encoding", keyType)
	}
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// keyBlobLen returns the length of the first fields length-prefixed strings
// of blob.
func keyBlobLen(blob []byte, fields int) (int, error) {
	rest := blob
	for i := 0; i < fields; i++ {
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

// checkKey applies the type and size rules to a key jitssh will certify or
// use: an accepted plain key type, RSA of 2048 to 8192 bits.
func checkKey(k ssh.PublicKey) error {
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
	if bits := rk.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return fmt.Errorf("public key: rsa key of %d bits; want %d to %d bits", bits, minRSABits, maxRSABits)
	}
	return nil
}

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
