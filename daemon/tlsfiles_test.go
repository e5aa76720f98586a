package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/tlspin"
)

func TestLoadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jitd.example"}, DNSNames: []string{"jitd.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, looseKey := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "loose.pem")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	for path, data := range map[string][]byte{certPath: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPath: keyPEM, looseKey: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(looseKey, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, wantErr string
	}{
		{name: "pair", cert: certPath, key: keyPath},
		{name: "cert alone", cert: certPath, wantErr: "go together"},
		{name: "loose key", cert: certPath, key: looseKey, wantErr: "too open"},
		{name: "missing key", cert: certPath, key: filepath.Join(dir, "none"), wantErr: "no such file"},
		{name: "key as cert", cert: keyPath, key: keyPath, wantErr: "load --tls-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fp, err := loadTLSFiles(tt.cert, tt.key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fp != tlspin.Fingerprint(der) {
				t.Errorf("fingerprint %s, want the certificate's %s", fp, tlspin.Fingerprint(der))
			}
		})
	}
}
