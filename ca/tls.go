package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jitssh/jitssh/tlspin"
)

// tlsValidity is the lifetime of the self-signed API certificate. Clients
// pin its fingerprint, so its expiry is only a backstop.
const tlsValidity = 5 * 365 * 24 * time.Hour

// InitTLS makes sure dir/tls.crt and dir/tls.key (0600) exist: a self-signed
// ECDSA P-256 certificate for the API whose subject alternative names are
// hosts plus 127.0.0.1 and localhost, valid from now minus one minute. It
// never overwrites: existing files are loaded, checked to form a pair and
// kept as they are, whatever hosts says. It returns the certificate's
// fingerprint (TLSFingerprint), which clients pin.
func InitTLS(dir string, hosts []string, now time.Time) (fingerprint string, err error) {
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_, certErr := os.Lstat(certPath)
	_, keyErr := os.Lstat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		return loadTLS(certPath, keyPath)
	case certErr == nil || keyErr == nil:
		return "", fmt.Errorf("tls: only one of %s and %s exists; restore the other or remove both", certPath, keyPath)
	case !errors.Is(certErr, fs.ErrNotExist):
		return "", fmt.Errorf("tls: %w", certErr)
	case !errors.Is(keyErr, fs.ErrNotExist):
		return "", fmt.Errorf("tls: %w", keyErr)
	}

	dnsNames, ips, err := tlsNames(hosts)
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", fmt.Errorf("tls: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: "jitssh API"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(tlsValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", fmt.Errorf("tls: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("tls: marshal key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("tls: create directory: %w", err)
	}
	// The key first: a certificate without its key would block the next run.
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	return tlspin.Fingerprint(der), nil
}

// tlsNames splits hosts (plus 127.0.0.1 and localhost) into DNS names and IP
// addresses, without duplicates.
func tlsNames(hosts []string) ([]string, []net.IP, error) {
	var dnsNames []string
	var ips []net.IP
	for _, h := range append(slices.Clone(hosts), "127.0.0.1", "localhost") {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if h == "" || strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ',' || r == '/' }) {
			return nil, nil, fmt.Errorf("tls: host name %q is not a DNS name or IP address", h)
		}
		if h = strings.ToLower(h); !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips, nil
}

// loadTLS checks an existing certificate and key pair and returns the
// certificate's fingerprint.
func loadTLS(certPath, keyPath string) (string, error) {
	fi, err := os.Stat(keyPath)
	if err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s: permissions %#o are too open; want 0600", keyPath, perm)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return "", fmt.Errorf("tls: load %s: %w", certPath, err)
	}
	return tlspin.Fingerprint(pair.Certificate[0]), nil
}
