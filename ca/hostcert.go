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
// host names or addresses, valid from now minus one minute to now plus
// validFor, key id "host:" plus the principals.
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
