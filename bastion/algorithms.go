package bastion

import (
	"fmt"
	"slices"

	"golang.org/x/crypto/ssh"
)

// The algorithms the bastion offers on both legs, beside the ciphers of
// clientLegCiphers and targetLegCiphers. They are what current hardening
// guides (ssh-audit's for OpenSSH 9) keep, limited to what x/crypto
// implements; docs/bastion.md lists them and says why.

// keyExchanges are offered, in this order, to engineers and to targets.
// ML-KEM-768 with X25519 is the hybrid post-quantum exchange x/crypto has
// (OpenSSH 9.9 and later speak it; older clients pick curve25519-sha256).
// x/crypto adds the curve25519-sha256@libssh.org alias itself, and the
// kex-strict-*-v00@openssh.com marker (Terrapin, CVE-2023-48795) on every
// first key exchange. No NIST-curve ECDH, no finite-field Diffie-Hellman
// (group14 is 2048 bits; group14-sha1 hashes with SHA-1).
func keyExchanges() []string {
	return []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519}
}

// macs are offered to engineers and targets: encrypt-then-MAC with SHA-2
// only. The AES-GCM and ChaCha20-Poly1305 ciphers carry their own
// authentication, so these apply only if a peer ever negotiated another
// cipher; they are listed so that no SHA-1 or encrypt-and-MAC mode is on
// offer at all.
func macs() []string {
	return []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
}

// userKeyAlgorithms are the signature algorithms the bastion accepts from
// engineers' keys (certificates use their key's algorithm): the key types
// the CA enrols (sshkey) without SHA-1 RSA. ECDSA and FIDO ECDSA stay: the
// CA enrols them, security keys that lack Ed25519 make sk-ecdsa keys, and
// refusing them here alone would lock enrolled users out with a bare
// "Permission denied". The host side, which ssh-audit rates, has no ECDSA.
func userKeyAlgorithms() []string {
	return []string{
		ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
		ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	}
}

// targetHostCertAlgorithms are the host key algorithms the bastion asks a
// target for when it checks the target's host certificate: Ed25519, then
// RSA with SHA-2.
func targetHostCertAlgorithms() []string {
	return []string{ssh.CertAlgoED25519v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01}
}

// hostKeyAlgos lists the host key algorithms that make a server present a
// plain key of type keyType, for a pinned target host key: Ed25519, or RSA
// with SHA-2. Other types (ECDSA, DSA) are refused.
func hostKeyAlgos(keyType string) ([]string, error) {
	switch keyType {
	case ssh.KeyAlgoED25519:
		return []string{ssh.KeyAlgoED25519}, nil
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}, nil
	}
	return nil, fmt.Errorf("host key type %q is not accepted towards targets: use the target's ssh-ed25519 (or RSA) host key", keyType)
}

// CheckTargetHostKey returns an error unless the bastion would ask a target
// for a host key of type keyType (plain or certified): ssh-ed25519 or
// ssh-rsa (used with SHA-2 only). jitd host certify refuses other keys, whose
// certificates the bastion would never be shown.
func CheckTargetHostKey(keyType string) error {
	_, err := hostKeyAlgos(keyType)
	return err
}

// checkHostSigner refuses a bastion host signer that would offer engineers
// anything but Ed25519 or RSA with SHA-2 (ca.HostCertSigner restricts RSA so).
func checkHostSigner(s ssh.Signer) error {
	switch t := s.PublicKey().Type(); t {
	case ssh.KeyAlgoED25519, ssh.CertAlgoED25519v01:
		return nil
	case ssh.KeyAlgoRSA, ssh.CertAlgoRSAv01:
		ms, ok := s.(ssh.MultiAlgorithmSigner)
		sha2 := []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		if !ok || slices.ContainsFunc(ms.Algorithms(), func(a string) bool { return !slices.Contains(sha2, a) }) {
			return fmt.Errorf("bastion host key %s may sign with SHA-1: restrict it to rsa-sha2-512/256", t)
		}
		return nil
	default:
		return fmt.Errorf("bastion host key type %q is not accepted: use ssh-ed25519 (or RSA with SHA-2)", t)
	}
}
