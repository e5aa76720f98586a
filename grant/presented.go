package grant

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// CodeCertificateMismatch refuses a certificate whose serial the CA issued
// but which differs from what it issued under that serial: a leaked or
// misused CA key signed it, not the door.
const CodeCertificateMismatch = "certificate_mismatch"

// PresentedCertificate is CertificateStatus for a certificate as presented:
// besides the serial being one the CA issued as a user certificate, every
// field that grants something must be the one the CA recorded for that
// serial (the signing CA, the certificate type, the key, the principals in
// order, the validity window to the second, the key id, the extensions and
// the critical options). A difference is KindForbidden with
// CodeCertificateMismatch, its message naming the first field that differs.
// Revocation is reported, not refused: the caller decides what a revoked
// certificate means for it.
func (s *Service) PresentedCertificate(ctx context.Context, cert *ssh.Certificate) (UserCertificate, error) {
	if cert == nil {
		return UserCertificate{}, newError(KindInvalid, CodeInvalidRequest, "no certificate presented")
	}
	uc, err := s.CertificateStatus(ctx, cert.Serial)
	if err != nil {
		return UserCertificate{}, err
	}
	if field, got, want := certMismatch(uc.Certificate, s.cfg.Keys.User.PublicKey(), cert); field != "" {
		return UserCertificate{}, mismatchError(cert.Serial, field, got, want)
	}
	return uc, nil
}

// mismatchError names the field of certificate serial that differs from the
// record, with both values (the presented one bounded: it is the forger's).
func mismatchError(serial uint64, field, got, want string) *Error {
	return newError(KindForbidden, CodeCertificateMismatch,
		"certificate serial %d differs from the one the CA issued: %s is %s, issued %s", serial, field,
		audit.BoundText(got, 2*maxAuditText), audit.BoundText(want, 2*maxAuditText))
}

// certMismatch compares a presented certificate with the record of its
// serial and the user CA's key, and returns the first field that differs
// with the presented and the recorded value, or "" when all agree.
func certMismatch(rec audit.Certificate, userCA ssh.PublicKey, cert *ssh.Certificate) (field, got, want string) {
	unix := func(t time.Time) string { return fmt.Sprint(t.Unix()) }
	checks := []struct {
		field     string
		got, want string
		equal     bool
	}{
		{"signing_ca", fingerprint(cert.SignatureKey), ssh.FingerprintSHA256(userCA),
			cert.SignatureKey != nil && bytes.Equal(cert.SignatureKey.Marshal(), userCA.Marshal())},
		{"cert_type", fmt.Sprint(cert.CertType), fmt.Sprint(ssh.UserCert), cert.CertType == ssh.UserCert},
		{"key", fingerprint(cert.Key), rec.KeyFingerprint, fingerprint(cert.Key) == rec.KeyFingerprint},
		{"principals", fmt.Sprintf("%q", cert.ValidPrincipals), fmt.Sprintf("%q", rec.Principals),
			slices.Equal(cert.ValidPrincipals, rec.Principals)},
		{"valid_after", fmt.Sprint(cert.ValidAfter), unix(rec.ValidAfter), int64(cert.ValidAfter) == rec.ValidAfter.Unix()},
		{"valid_before", fmt.Sprint(cert.ValidBefore), unix(rec.ValidBefore), int64(cert.ValidBefore) == rec.ValidBefore.Unix()},
		{"key_id", fmt.Sprintf("%q", cert.KeyId), fmt.Sprintf("%q", rec.KeyID), cert.KeyId == rec.KeyID},
		{"extensions", mapText(cert.Extensions), mapText(rec.Extensions), maps.Equal(cert.Extensions, rec.Extensions)},
		{"critical_options", mapText(cert.CriticalOptions), mapText(rec.CriticalOptions),
			maps.Equal(cert.CriticalOptions, rec.CriticalOptions)},
	}
	for _, c := range checks {
		if !c.equal {
			return c.field, c.got, c.want
		}
	}
	return "", "", ""
}

func fingerprint(k ssh.PublicKey) string {
	if k == nil {
		return "none"
	}
	return ssh.FingerprintSHA256(k)
}

// mapText shows extensions or critical options in a stable order.
func mapText(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] == "" {
			parts = append(parts, k)
		} else {
			parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}
