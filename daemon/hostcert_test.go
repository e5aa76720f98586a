package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/issuance"
	"github.com/jitssh/jitssh/issuance/issuancetest"
)

func hostKeyFile(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	return path, testkit.PublicKeyFile(t, path)
}

// `jitd host certify` leaves the certificate's row and its host_cert.issued
// event in the store, even while jitd has the store open, and writes the
// certificate the row describes.
func TestCertifyHostKeyIsRecorded(t *testing.T) {
	ctx := context.Background()
	dir := initDir(t)
	running, err := audit.Open(Layout{Dir: dir}.Database()) // as jitd serve would hold it
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	path, key := hostKeyFile(t)
	cert, out, err := CertifyHostKey(ctx, dir, HostCertRequest{KeyPath: path, Principals: []string{"db1", "10.0.0.5"},
		ValidFor: 30 * 24 * time.Hour, Actor: "operator:root"}, testNow)
	if err != nil {
		t.Fatalf("CertifyHostKey: %v", err)
	}
	written, err := os.ReadFile(out)
	if err != nil || out != strings.TrimSuffix(path, ".pub")+"-cert.pub" || !bytes.Equal(written, ssh.MarshalAuthorizedKey(cert)) {
		t.Fatalf("wrote %s (%v), want the certificate beside the key", out, err)
	}
	keys, err := ca.LoadKeys(Layout{Dir: dir}.CADir())
	if err != nil {
		t.Fatal(err)
	}
	if cert.CertType != ssh.HostCert || !bytes.Equal(cert.SignatureKey.Marshal(), keys.Host.PublicKey().Marshal()) {
		t.Errorf("certificate type %d signed by %s, want a host certificate of the host CA", cert.CertType, ssh.FingerprintSHA256(cert.SignatureKey))
	}
	row, err := running.Certificate(ctx, cert.Serial)
	if err != nil {
		t.Fatalf("no row for the certificate: %v", err)
	}
	if row.Kind != "host" || row.Host != "db1" || !slices.Equal(row.Principals, []string{"db1", "10.0.0.5"}) ||
		row.KeyFingerprint != ssh.FingerprintSHA256(key) || row.ValidBefore.Unix() != int64(cert.ValidBefore) {
		t.Errorf("row %+v", row)
	}
	evs, err := running.Events(ctx, audit.EventFilter{Type: "host_cert.issued"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("host_cert.issued events %+v, %v; want one", evs, err)
	}
	ev := evs[0]
	if ev.Serial != cert.Serial || ev.Code != "target" || ev.Actor != "operator:root" || ev.Host != "db1" ||
		ev.Data["principals"] != "db1,10.0.0.5" || ev.Data["key_fingerprint"] != row.KeyFingerprint || ev.Data["valid_before"] == "" {
		t.Errorf("event %+v", ev)
	}
}

func TestCertifyHostKeyRefuses(t *testing.T) {
	dir := initDir(t)
	path, _ := hostKeyFile(t)
	bad := filepath.Join(t.TempDir(), "bad.pub")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := ssh.NewPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaPath := filepath.Join(t.TempDir(), "ssh_host_ecdsa_key.pub")
	if err := os.WriteFile(ecdsaPath, ssh.MarshalAuthorizedKey(ecPub), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     HostCertRequest
		wantErr string
	}{
		{name: "ecdsa host key, which the bastion never asks for", req: HostCertRequest{KeyPath: ecdsaPath, Principals: []string{"db1"}, ValidFor: time.Hour}, wantErr: `"ecdsa-sha2-nistp256" is not accepted towards targets`},
		{name: "zero validity", req: HostCertRequest{KeyPath: path, Principals: []string{"db1"}}, wantErr: "validity 0s must be positive"},
		{name: "no principal", req: HostCertRequest{KeyPath: path, ValidFor: time.Hour}, wantErr: "at least one principal"},
		{name: "wildcard principal", req: HostCertRequest{KeyPath: path, Principals: []string{"*.example.com"}, ValidFor: time.Hour}, wantErr: "not allowed"},
		{name: "missing key file", req: HostCertRequest{KeyPath: path + ".gone", Principals: []string{"db1"}, ValidFor: time.Hour}, wantErr: "read host key"},
		{name: "not a key", req: HostCertRequest{KeyPath: bad, Principals: []string{"db1"}, ValidFor: time.Hour}, wantErr: "parse host key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := CertifyHostKey(context.Background(), dir, tt.req, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CertifyHostKey error %v, want %q", err, tt.wantErr)
			}
		})
	}
	store, err := audit.Open(Layout{Dir: dir}.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if rows, err := store.Certificates(context.Background(), audit.CertificateFilter{}); err != nil || len(rows) != 0 {
		t.Errorf("rows %+v, %v after refusals; want none", rows, err)
	}
}

// The bastion's host certificate is recorded before the host CA signs it;
// if it cannot sign, the failure is recorded and the serial revoked.
func TestCertifyBastionRecordsBeforeSigning(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "signs", true: "signer fails"}[fail], func(t *testing.T) {
			ctx := context.Background()
			dir := initDir(t)
			l := Layout{Dir: dir}
			keys, err := ca.LoadKeys(l.CADir())
			if err != nil {
				t.Fatal(err)
			}
			store, err := audit.Open(l.Database())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			probe := &issuancetest.Probe{Signer: keys.Host, Store: store, Fail: fail}
			iss, err := issuance.New(issuance.Config{Store: store, Keys: &ca.Keys{User: keys.User, Target: keys.Target, Host: probe}})
			if err != nil {
				t.Fatal(err)
			}
			hostKey, err := ca.LoadOrCreateHostKey(l.BastionHostKey(), ca.Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := certifyBastion(ctx, iss, hostKey, bastionPrincipals("127.0.0.1:2222", nil), DefaultBastionCertLifetime, testNow, eventBastion)
			rows, rerr := store.Certificates(ctx, audit.CertificateFilter{Kind: "host"})
			if rerr != nil || len(rows) != 1 {
				t.Fatalf("host rows %+v, %v; want one", rows, rerr)
			}
			probe.RecordedBeforeSigning(t, rows[0].Serial, "host", "host_cert.issued")
			if fail {
				if !errors.Is(err, issuance.ErrSigning) || signer != nil || rows[0].RevokedAt.IsZero() {
					t.Fatalf("certifyBastion = %v, %v; row %+v; want ErrSigning and the row revoked", signer, err, rows[0])
				}
				return
			}
			if err != nil {
				t.Fatalf("certifyBastion: %v", err)
			}
			cert, ok := signer.PublicKey().(*ssh.Certificate)
			if !ok || cert.Serial != rows[0].Serial || !slices.Contains(cert.ValidPrincipals, BastionHostKeyAlias) {
				t.Fatalf("signer presents %T, want the recorded host certificate", signer.PublicKey())
			}
		})
	}
}
