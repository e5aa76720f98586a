package ca

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostCertSpec is everything that goes into a host certificate.
type HostCertSpec struct {
	// Key is the host's public key (a target's ssh_host_ed25519_key.pub, or
	// the bastion's); it must not be a certificate.
	Key ssh.PublicKey
	// Serial is non-zero (serial 0 cannot be revoked by serial).
	Serial uint64
	// KeyID names the certificate in logs; non-empty, printable.
	KeyID string
	// Principals are host names or addresses: no '@', no wildcards.
	Principals []string
	// ValidAfter and ValidBefore bound the validity, to the second.
	ValidAfter, ValidBefore time.Time
}

// Validate reports every problem with s, naming the field: a missing or
// unacceptable key, serial 0, an empty or non-printable KeyID, no principals
// or an invalid one (as for user certificates, and no '@' at all), or
// ValidBefore not after ValidAfter.
func (s HostCertSpec) Validate() error {
	errs := validCommon(s.Key, s.Serial, s.KeyID, s.Principals, false, s.ValidAfter, s.ValidBefore)
	if len(errs) > 0 {
		return fmt.Errorf("host certificate spec: %w", errors.Join(errs...))
	}
	return nil
}

// SignHostCert validates spec, signs a host certificate with the host CA
// signer (an RSA CA signs with rsa-sha2-512) and verifies the result before
// returning it.
func SignHostCert(hostCA ssh.Signer, spec HostCertSpec) (*ssh.Certificate, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cert := &ssh.Certificate{
		Key:             spec.Key,
		Serial:          spec.Serial,
		CertType:        ssh.HostCert,
		KeyId:           spec.KeyID,
		ValidPrincipals: slices.Clone(spec.Principals),
		ValidAfter:      uint64(spec.ValidAfter.Unix()),
		ValidBefore:     uint64(spec.ValidBefore.Unix()),
	}
	if err := signAndVerify(hostCA, cert, spec.ValidAfter); err != nil {
		return nil, fmt.Errorf("sign host certificate %q serial %d: %w", spec.KeyID, spec.Serial, err)
	}
	return cert, nil
}

// HostCertSigner returns a signer that presents cert for key, for an ssh
// server config (the bastion's). It signs nothing with a CA: cert must
// already be a host certificate of key's public key. An RSA key signs with
// SHA-2 only.
func HostCertSigner(key ssh.Signer, cert *ssh.Certificate) (ssh.Signer, error) {
	switch {
	case key == nil:
		return nil, errors.New("host certificate signer: key missing")
	case cert == nil:
		return nil, errors.New("host certificate signer: certificate missing")
	case cert.CertType != ssh.HostCert:
		return nil, fmt.Errorf("host certificate signer: certificate serial %d is not a host certificate", cert.Serial)
	}
	hostKey, err := sha2Signer(key)
	if err != nil {
		return nil, fmt.Errorf("host certificate signer: %w", err)
	}
	s, err := ssh.NewCertSigner(cert, hostKey)
	if err != nil {
		return nil, fmt.Errorf("host certificate signer: %w", err)
	}
	return s, nil
}
