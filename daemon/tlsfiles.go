package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/jitssh/jitssh/tlspin"
)

// loadTLSFiles loads the certificate and key given by jitd serve
// --tls-cert/--tls-key: both are needed, and the key must be readable by
// its owner only, as jitd's own keys.
func loadTLSFiles(certPath, keyPath string) (tls.Certificate, string, error) {
	if certPath == "" || keyPath == "" {
		return tls.Certificate{}, "", errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("--tls-key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, "", fmt.Errorf("--tls-key %s: permissions %04o are too open; want 0600", keyPath, fi.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load --tls-cert %s and --tls-key %s: %w", certPath, keyPath, err)
	}
	return cert, tlspin.Fingerprint(cert.Certificate[0]), nil
}
