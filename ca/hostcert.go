package ca

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SignHostCert signs a host certificate for a host public key held
// elsewhere (a target's /etc/ssh/ssh_host_ed25519_key.pub): principals are
// host names or addresses (no '@', no wildcards), valid from now minus one
// minute (for clock skew) to now plus validFor, key id "host:" plus the
// principals; serial non-zero. The result is verified before it is returned.
func SignHostCert(hostCA ssh.Signer, key ssh.PublicKey, principals []string, validFor time.Duration, now time.Time, serial uint64) (*ssh.Certificate, error) {
	if key == nil {
		return nil, errors.New("certify host: key missing")
	}
	if serial == 0 {
		return nil, errors.New("certify host: serial must not be 0")
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("certify host: validity %v must be positive", validFor)
	}
	if err := validPrincipals(principals, false); err != nil {
		return nil, fmt.Errorf("certify host: %w", err)
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("certify host: key: %w", err)
	}
	cert := &ssh.Certificate{
		Key:             key,
		Serial:          serial,
		CertType:        ssh.HostCert,
		KeyId:           "host:" + strings.Join(principals, ","),
		ValidPrincipals: slices.Clone(principals),
		ValidAfter:      uint64(now.Add(-hostBackdate).Unix()),
		ValidBefore:     uint64(now.Add(validFor).Unix()),
	}
	if err := signAndVerify(hostCA, cert, now); err != nil {
		return nil, fmt.Errorf("certify host %q: %w", principals[0], err)
	}
	return cert, nil
}

// CertifyHost signs a host certificate for key with the host CA, as
// SignHostCert does, and returns a signer that presents the certificate, for
// an ssh server config (the bastion's). An RSA key signs with SHA-2 only.
func CertifyHost(hostCA ssh.Signer, key ssh.Signer, principals []string, validFor time.Duration, now time.Time, serial uint64) (ssh.Signer, *ssh.Certificate, error) {
	if key == nil {
		return nil, nil, errors.New("certify host: key missing")
	}
	cert, err := SignHostCert(hostCA, key.PublicKey(), principals, validFor, now, serial)
	if err != nil {
		return nil, nil, err
	}
	hostKey, err := sha2Signer(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certify host: %w", err)
	}
	certSigner, err := ssh.NewCertSigner(cert, hostKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certify host: %w", err)
	}
	return certSigner, cert, nil
}
