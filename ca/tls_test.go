package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/tlspin"
)

func TestInitTLS(t *testing.T) {
	tests := []struct {
		name      string
		hosts     []string
		wantDNS   []string
		wantIPs   []string
		wantError string
	}{
		{name: "defaults only", hosts: nil, wantDNS: []string{"localhost"}, wantIPs: []string{"127.0.0.1"}},
		{name: "names and addresses", hosts: []string{"jit.example.com", "192.0.2.7", "::1", "LOCALHOST"},
			wantDNS: []string{"jit.example.com", "localhost"}, wantIPs: []string{"192.0.2.7", "::1", "127.0.0.1"}},
		{name: "empty host", hosts: []string{""}, wantError: `tls: host name "" is not a DNS name or IP address`},
		{name: "host with space", hosts: []string{"a b"}, wantError: `host name "a b"`},
		{name: "url instead of host", hosts: []string{"https://jit.example.com"}, wantError: `host name "https://jit.example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			fp, err := InitTLS(dir, tt.hosts, t0)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("InitTLS error %v, want %q", err, tt.wantError)
				}
				if _, serr := os.Stat(filepath.Join(dir, "tls.key")); serr == nil {
					t.Fatal("InitTLS left a key behind after an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("InitTLS: %v", err)
			}
			pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(cert.Raw)
			if want := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]); fp != want || tlspin.Fingerprint(cert.Raw) != want {
				t.Fatalf("fingerprint %q, want %q", fp, want)
			}
			if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Fatalf("public key %T, want ECDSA P-256", cert.PublicKey)
			}
			if !slices.Equal(cert.DNSNames, tt.wantDNS) {
				t.Errorf("DNS names %q, want %q", cert.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IP addresses %q, want %q", ips, tt.wantIPs)
			}
			if !cert.NotBefore.Equal(t0.Add(-time.Minute)) || !cert.NotAfter.After(t0.Add(365*24*time.Hour)) {
				t.Errorf("validity %v to %v", cert.NotBefore, cert.NotAfter)
			}
			if fi, err := os.Stat(filepath.Join(dir, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("tls.key mode %v, %v; want 0600", fi.Mode(), err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(cert)
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: roots, CurrentTime: t0}); err != nil {
				t.Errorf("certificate does not verify for 127.0.0.1: %v", err)
			}

			// A second call, with other hosts and another time, keeps the files.
			before := readFiles(t, dir)
			fp2, err := InitTLS(dir, []string{"other.example.com"}, t0.Add(time.Hour))
			if err != nil || fp2 != fp {
				t.Fatalf("second InitTLS = %q, %v; want %q", fp2, err, fp)
			}
			after := readFiles(t, dir)
			for name, b := range before {
				if string(after[name]) != string(b) {
					t.Fatalf("%s changed on the second InitTLS", name)
				}
			}
		})
	}
}

func TestInitTLSRefuses(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr string
	}{
		{name: "key too open", damage: chmod("tls.key", 0o644), wantErr: "tls.key: permissions 0644 are too open; want 0600"},
		{name: "key missing", damage: remove("tls.key"), wantErr: "only one of"},
		{name: "certificate missing", damage: remove("tls.crt"), wantErr: "only one of"},
		{name: "key of another pair", damage: func(t *testing.T, dir string) {
			other := t.TempDir()
			if _, err := InitTLS(other, nil, t0); err != nil {
				t.Fatal(err)
			}
			copyFile(t, filepath.Join(other, "tls.key"), filepath.Join(dir, "tls.key"))
			chmod("tls.key", 0o600)(t, dir)
		}, wantErr: "private key does not match public key"},
		{name: "certificate not pem", damage: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: []byte{1}}), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "tls: load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := InitTLS(dir, nil, t0); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			if _, err := InitTLS(dir, nil, t0); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("InitTLS error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestTLSHandshakeWithPinnedFingerprint(t *testing.T) {
	dir := t.TempDir()
	fp, err := InitTLS(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	}()
	var seen string
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // replaced by the fingerprint pin below
		MinVersion:         tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			seen = tlspin.Fingerprint(raw[0])
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if seen != fp {
		t.Fatalf("server presented %q, InitTLS said %q", seen, fp)
	}
}
