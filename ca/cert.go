package ca

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Limits on certificate fields; OpenSSH has none this small, but nothing
// jitssh issues comes near them.
const (
	maxPrincipalLen = 256
	maxKeyIDLen     = 1024
)

// Extension and critical option names of OpenSSH user certificates
// (PROTOCOL.certkeys).
const (
	ExtPermitPTY            = "permit-pty"
	ExtPermitPortForwarding = "permit-port-forwarding"
	ExtPermitAgentForward   = "permit-agent-forwarding"
	ExtPermitX11Forwarding  = "permit-X11-forwarding"
	ExtPermitUserRC         = "permit-user-rc"
	OptSourceAddress        = "source-address"
	OptForceCommand         = "force-command"
)

// knownExtensions are the only extensions SignUserCert puts in a certificate.
func knownExtensions() []string {
	return []string{ExtPermitPTY, ExtPermitPortForwarding, ExtPermitAgentForward, ExtPermitX11Forwarding, ExtPermitUserRC}
}

// SupportedCriticalOptions are the critical options SignUserCert accepts;
// pass them as ssh.CertChecker.SupportedCriticalOptions, since a checker must
// refuse a certificate with a critical option it does not know.
func SupportedCriticalOptions() []string {
	return []string{OptSourceAddress, OptForceCommand}
}

// UserCertSpec is everything that goes into a user certificate.
type UserCertSpec struct {
	// Key is the engineer's (or the bastion's per-session) public key; it
	// must not be a certificate.
	Key ssh.PublicKey
	// Serial is non-zero (serial 0 cannot be revoked by serial).
	Serial uint64
	// KeyID is logged by sshd on every login; non-empty, printable.
	KeyID string
	// Principals are LOGIN@HOST names; at least one.
	Principals []string
	// ValidAfter and ValidBefore bound the validity, to the second.
	ValidAfter, ValidBefore time.Time
	// Extensions are permit-* names with empty values; absent means denied.
	Extensions map[string]string
	// CriticalOptions may hold source-address (comma-separated CIDRs) and
	// force-command.
	CriticalOptions map[string]string
}

// Validate reports every problem with s, naming the field: a missing or
// unacceptable key, serial 0, an empty or non-printable KeyID, no principals
// or an invalid one (empty, or with ',', '*', '?', '%', whitespace, control
// characters, NUL, or more than one '@'), ValidBefore not after ValidAfter,
// an unknown extension or one with a value, an unknown critical option, a
// source-address that is not a list of CIDRs, or an empty force-command.
func (s UserCertSpec) Validate() error {
	errs := validCommon(s.Key, s.Serial, s.KeyID, s.Principals, true, s.ValidAfter, s.ValidBefore)
	for _, name := range slices.Sorted(maps.Keys(s.Extensions)) {
		switch {
		case !slices.Contains(knownExtensions(), name):
			errs = append(errs, fmt.Errorf("extensions: unknown extension %q", name))
		case s.Extensions[name] != "":
			errs = append(errs, fmt.Errorf("extensions: %s must have an empty value, not %q", name, s.Extensions[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.CriticalOptions)) {
		value := s.CriticalOptions[name]
		switch name {
		case OptSourceAddress:
			if err := validSourceAddress(value); err != nil {
				errs = append(errs, err)
			}
		case OptForceCommand:
			if value == "" || strings.ContainsRune(value, 0) || !utf8.ValidString(value) {
				errs = append(errs, fmt.Errorf("critical options: force-command %q must be non-empty UTF-8 without NUL", value))
			}
		default:
			errs = append(errs, fmt.Errorf("critical options: unknown option %q", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("certificate spec: %w", errors.Join(errs...))
	}
	return nil
}

func validKeyID(id string) error {
	if id == "" {
		return errors.New("key id: empty")
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("key id: %d bytes is longer than %d", len(id), maxKeyIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("key id %q: not valid UTF-8", id)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("key id %q: character %q is not printable", id, r)
		}
	}
	return nil
}

// validPrincipals checks a principal list. User principals are LOGIN@HOST
// (one '@' allowed); host principals have none.
func validPrincipals(ps []string, user bool) error {
	if len(ps) == 0 {
		// An empty list means "any principal" to many checkers.
		return errors.New("principals: none given; at least one is required")
	}
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if err := validPrincipal(p, user); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("principals: %q given twice", p)
		}
		seen[p] = true
	}
	return nil
}

func validPrincipal(p string, user bool) error {
	if p == "" {
		return errors.New("principals: empty principal")
	}
	if len(p) > maxPrincipalLen {
		return fmt.Errorf("principal %q: longer than %d bytes", p, maxPrincipalLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("principal %q: not valid UTF-8", p)
	}
	for _, r := range p {
		if r == 0 || r == ',' || r == '*' || r == '?' || r == '%' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("principal %q: character %q not allowed", p, r)
		}
	}
	switch n := strings.Count(p, "@"); {
	case n > 1:
		return fmt.Errorf("principal %q: more than one '@'", p)
	case n == 1 && !user:
		return fmt.Errorf("host principal %q: '@' not allowed", p)
	case n == 1 && (strings.HasPrefix(p, "@") || strings.HasSuffix(p, "@")):
		return fmt.Errorf("principal %q: want LOGIN@HOST with both parts", p)
	}
	return nil
}

func validTimes(after, before time.Time) error {
	switch {
	case after.IsZero():
		return errors.New("valid after: missing")
	case before.IsZero():
		return errors.New("valid before: missing")
	case after.Unix() < 0:
		return fmt.Errorf("valid after: %s is before 1970", after.UTC().Format(time.RFC3339))
	case before.Unix() <= after.Unix():
		return fmt.Errorf("valid before: %s is not after valid after %s",
			before.UTC().Format(time.RFC3339), after.UTC().Format(time.RFC3339))
	}
	return nil
}

// validSourceAddress checks a source-address value the way x/crypto's
// CertChecker reads it: comma-separated CIDRs, no spaces, no bare addresses.
func validSourceAddress(v string) error {
	if v == "" {
		return errors.New("critical options: source-address is empty")
	}
	for _, c := range strings.Split(v, ",") {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("critical options: source-address %q: %q is not a CIDR such as 192.0.2.0/24", v, c)
		}
	}
	return nil
}

// SignUserCert validates spec, signs a user certificate with the CA signer
// (an RSA CA signs with rsa-sha2-512) and verifies the result before
// returning it.
func SignUserCert(signer ssh.Signer, spec UserCertSpec) (*ssh.Certificate, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cert := &ssh.Certificate{
		Key:             spec.Key,
		Serial:          spec.Serial,
		CertType:        ssh.UserCert,
		KeyId:           spec.KeyID,
		ValidPrincipals: slices.Clone(spec.Principals),
		ValidAfter:      uint64(spec.ValidAfter.Unix()),
		ValidBefore:     uint64(spec.ValidBefore.Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: maps.Clone(spec.CriticalOptions),
			Extensions:      maps.Clone(spec.Extensions),
		},
	}
	if err := signAndVerify(signer, cert, spec.ValidAfter); err != nil {
		return nil, fmt.Errorf("sign user certificate %q serial %d: %w", spec.KeyID, spec.Serial, err)
	}
	return cert, nil
}

// signAndVerify signs cert with ca (RSA with rsa-sha2-512) and checks the
// result as a verifier would at time at.
func signAndVerify(ca ssh.Signer, cert *ssh.Certificate, at time.Time) error {
	if ca == nil {
		return errors.New("ca signer missing")
	}
	if err := checkKey(ca.PublicKey()); err != nil {
		return fmt.Errorf("ca key: %w", err)
	}
	signer := ca
	if ca.PublicKey().Type() == ssh.KeyAlgoRSA {
		as, ok := ca.(ssh.AlgorithmSigner)
		if !ok {
			return errors.New("ca key: rsa signer cannot choose its signature algorithm")
		}
		var err error
		if signer, err = ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512}); err != nil {
			return fmt.Errorf("ca key: %w", err)
		}
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return err
	}
	checker := ssh.CertChecker{
		SupportedCriticalOptions: SupportedCriticalOptions(),
		Clock:                    func() time.Time { return at },
	}
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), ca.PublicKey().Marshal()) {
		return errors.New("verify: signed by another key")
	}
	if ca.PublicKey().Type() == ssh.KeyAlgoRSA && cert.Signature.Format != ssh.KeyAlgoRSASHA512 {
		return fmt.Errorf("verify: signature algorithm %q, want %q", cert.Signature.Format, ssh.KeyAlgoRSASHA512)
	}
	return nil
}

// NewSerial returns a random serial in [1, 2^63) read from r (crypto/rand
// if nil). It is not unique by itself: the audit store enforces uniqueness.
func NewSerial(r io.Reader) (uint64, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [8]byte
	for range 16 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("new serial: %w", err)
		}
		if s := binary.BigEndian.Uint64(b[:]) &^ (1 << 63); s != 0 {
			return s, nil
		}
	}
	return 0, errors.New("new serial: random source returned only zeros")
}

// FormatCert returns c as an authorized_keys line, "TYPE-cert-v01@openssh.com
// BASE64 KEY_ID\n", the form of a -cert.pub file.
func FormatCert(c *ssh.Certificate) []byte {
	return []byte(PublicKeyLine(c, c.KeyId) + "\n")
}

// validCommon checks what user and host certificate specs share: the key
// (present, plain, acceptable to sshkey's rule), a non-zero serial, the key
// id, the principals (userPrincipals allows the one '@' of LOGIN@HOST) and
// the validity window. It returns every problem, each naming its field.
func validCommon(key ssh.PublicKey, serial uint64, keyID string, principals []string, userPrincipals bool, after, before time.Time) []error {
	var errs []error
	switch k := key.(type) {
	case nil:
		errs = append(errs, errors.New("key: missing"))
	case *ssh.Certificate:
		errs = append(errs, fmt.Errorf("key: is a %s certificate; certify the plain key", k.Type()))
	default:
		if err := checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("key: %w", err))
		}
	}
	if serial == 0 {
		errs = append(errs, errors.New("serial: must not be 0"))
	}
	if err := validKeyID(keyID); err != nil {
		errs = append(errs, err)
	}
	if err := validPrincipals(principals, userPrincipals); err != nil {
		errs = append(errs, err)
	}
	if err := validTimes(after, before); err != nil {
		errs = append(errs, err)
	}
	return errs
}
