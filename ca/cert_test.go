package ca

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func validSpec(key ssh.PublicKey) UserCertSpec {
	return UserCertSpec{
		Key:             key,
		Serial:          7,
		KeyID:           "alice req-1",
		Principals:      []string{"root@db1"},
		ValidAfter:      t0,
		ValidBefore:     t0.Add(10 * time.Minute),
		Extensions:      map[string]string{ExtPermitPTY: ""},
		CriticalOptions: map[string]string{OptSourceAddress: "10.0.0.0/8,192.0.2.1/32", OptForceCommand: "/usr/bin/uptime"},
	}
}

func TestUserCertSpecValidate(t *testing.T) {
	key := testkit.Signer(t).PublicKey()
	cert, err := SignUserCert(testkit.Signer(t), validSpec(key))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mutate  func(*UserCertSpec)
		wantErr string // "" means valid
	}{
		{name: "valid", mutate: func(*UserCertSpec) {}},
		{name: "no extensions or options", mutate: func(s *UserCertSpec) { s.Extensions, s.CriticalOptions = nil, nil }},
		{name: "every known extension", mutate: func(s *UserCertSpec) {
			s.Extensions = map[string]string{"permit-pty": "", "permit-port-forwarding": "", "permit-agent-forwarding": "", "permit-X11-forwarding": "", "permit-user-rc": ""}
		}},
		{name: "plain principal without @", mutate: func(s *UserCertSpec) { s.Principals = []string{"deploy"} }},
		{name: "ipv6 source address", mutate: func(s *UserCertSpec) { s.CriticalOptions = map[string]string{"source-address": "2001:db8::/32"} }},
		{name: "key missing", mutate: func(s *UserCertSpec) { s.Key = nil }, wantErr: "key: missing"},
		{name: "key is a certificate", mutate: func(s *UserCertSpec) { s.Key = cert }, wantErr: "key: is a ssh-ed25519-cert-v01@openssh.com certificate"},
		{name: "key rsa 1024", mutate: func(s *UserCertSpec) { s.Key = testkit.RSAPublic(t, 1024) }, wantErr: "rsa key of 1024 bits"},
		{name: "serial zero", mutate: func(s *UserCertSpec) { s.Serial = 0 }, wantErr: "serial: must not be 0"},
		{name: "key id empty", mutate: func(s *UserCertSpec) { s.KeyID = "" }, wantErr: "key id: empty"},
		{name: "key id with newline", mutate: func(s *UserCertSpec) { s.KeyID = "a\nb" }, wantErr: `key id "a\nb": character '\n' is not printable`},
		{name: "key id invalid utf-8", mutate: func(s *UserCertSpec) { s.KeyID = "a\xff" }, wantErr: "not valid UTF-8"},
		{name: "key id too long", mutate: func(s *UserCertSpec) { s.KeyID = strings.Repeat("k", 1025) }, wantErr: "1025 bytes is longer than 1024"},
		{name: "no principals", mutate: func(s *UserCertSpec) { s.Principals = nil }, wantErr: "principals: none given"},
		{name: "empty principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db1", ""} }, wantErr: "principals: empty principal"},
		{name: "comma principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db1,root@db2"} }, wantErr: `character ',' not allowed`},
		{name: "star principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@*"} }, wantErr: `character '*' not allowed`},
		{name: "question mark principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db?"} }, wantErr: `character '?' not allowed`},
		{name: "percent principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"%u@db1"} }, wantErr: `character '%' not allowed`},
		{name: "space principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root @db1"} }, wantErr: `character ' ' not allowed`},
		{name: "tab principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@\tdb1"} }, wantErr: `character '\t' not allowed`},
		{name: "non-breaking space principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db\u00a01"} }, wantErr: "not allowed"},
		{name: "control principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db\x7f"} }, wantErr: `character '\x7f' not allowed`},
		{name: "nul principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db\x001"} }, wantErr: `character '\x00' not allowed`},
		{name: "two @ principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db1@x"} }, wantErr: "more than one '@'"},
		{name: "empty login", mutate: func(s *UserCertSpec) { s.Principals = []string{"@db1"} }, wantErr: "want LOGIN@HOST with both parts"},
		{name: "empty host", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@"} }, wantErr: "want LOGIN@HOST with both parts"},
		{name: "duplicate principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@db1", "root@db1"} }, wantErr: `"root@db1" given twice`},
		{name: "invalid utf-8 principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@\xffdb"} }, wantErr: "not valid UTF-8"},
		{name: "long principal", mutate: func(s *UserCertSpec) { s.Principals = []string{"root@" + strings.Repeat("h", 300)} }, wantErr: "longer than 256 bytes"},
		{name: "valid before equals valid after", mutate: func(s *UserCertSpec) { s.ValidBefore = s.ValidAfter }, wantErr: "valid before: 2026-03-01T12:00:00Z is not after valid after 2026-03-01T12:00:00Z"},
		{name: "sub-second validity", mutate: func(s *UserCertSpec) { s.ValidBefore = s.ValidAfter.Add(500 * time.Millisecond) }, wantErr: "is not after valid after"},
		{name: "valid before earlier", mutate: func(s *UserCertSpec) { s.ValidBefore = s.ValidAfter.Add(-time.Hour) }, wantErr: "is not after valid after"},
		{name: "valid after missing", mutate: func(s *UserCertSpec) { s.ValidAfter = time.Time{} }, wantErr: "valid after: missing"},
		{name: "valid before missing", mutate: func(s *UserCertSpec) { s.ValidBefore = time.Time{} }, wantErr: "valid before: missing"},
		{name: "valid after before 1970", mutate: func(s *UserCertSpec) { s.ValidAfter = time.Unix(-10, 0) }, wantErr: "before 1970"},
		{name: "unknown extension", mutate: func(s *UserCertSpec) { s.Extensions = map[string]string{"permit-everything": ""} }, wantErr: `unknown extension "permit-everything"`},
		{name: "extension with value", mutate: func(s *UserCertSpec) { s.Extensions = map[string]string{"permit-pty": "yes"} }, wantErr: `permit-pty must have an empty value, not "yes"`},
		{name: "unknown critical option", mutate: func(s *UserCertSpec) { s.CriticalOptions = map[string]string{"verify-required": ""} }, wantErr: `unknown option "verify-required"`},
		{name: "source address bare ip", mutate: func(s *UserCertSpec) { s.CriticalOptions = map[string]string{"source-address": "10.1.2.3"} }, wantErr: `"10.1.2.3" is not a CIDR`},
		{name: "source address with space", mutate: func(s *UserCertSpec) {
			s.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8, 192.0.2.0/24"}
		}, wantErr: `" 192.0.2.0/24" is not a CIDR`},
		{name: "source address empty", mutate: func(s *UserCertSpec) { s.CriticalOptions = map[string]string{"source-address": ""} }, wantErr: "source-address is empty"},
		{name: "source address trailing comma", mutate: func(s *UserCertSpec) { s.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8,"} }, wantErr: `"" is not a CIDR`},
		{name: "force command empty", mutate: func(s *UserCertSpec) { s.CriticalOptions = map[string]string{"force-command": ""} }, wantErr: "force-command"},
		{name: "several problems reported together", mutate: func(s *UserCertSpec) { s.Serial, s.KeyID = 0, "" }, wantErr: "serial: must not be 0\nkey id: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec(key)
			tt.mutate(&spec)
			err := spec.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate error %v, want it to contain %q", err, tt.wantErr)
			}
			if _, serr := SignUserCert(testkit.Signer(t), spec); serr == nil {
				t.Fatal("SignUserCert signed a spec that Validate refuses")
			}
		})
	}
}

func TestSignUserCert(t *testing.T) {
	user := testkit.Signer(t).PublicKey()
	tests := []struct {
		name    string
		alg     Algorithm
		wantSig string
	}{
		{name: "ed25519 ca", alg: Ed25519, wantSig: ssh.KeyAlgoED25519},
		{name: "ecdsa p256 ca", alg: ECDSAP256, wantSig: ssh.KeyAlgoECDSA256},
		{name: "ecdsa p384 ca", alg: ECDSAP384, wantSig: ssh.KeyAlgoECDSA384},
		{name: "rsa 3072 ca signs with sha-512", alg: RSA3072, wantSig: ssh.KeyAlgoRSASHA512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, _, err := InitKeys(t.TempDir(), tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			spec := validSpec(user)
			cert, err := SignUserCert(keys.User, spec)
			if err != nil {
				t.Fatalf("SignUserCert: %v", err)
			}
			if cert.Signature.Format != tt.wantSig {
				t.Errorf("signature format %q, want %q", cert.Signature.Format, tt.wantSig)
			}
			// The caller's maps are copied, not shared.
			spec.Extensions["permit-agent-forwarding"] = ""
			if _, ok := cert.Extensions["permit-agent-forwarding"]; ok {
				t.Error("certificate shares the spec's extension map")
			}
			checker := ssh.CertChecker{
				IsUserAuthority: func(auth ssh.PublicKey) bool {
					return bytes.Equal(auth.Marshal(), keys.User.PublicKey().Marshal())
				},
				SupportedCriticalOptions: SupportedCriticalOptions(),
				Clock:                    func() time.Time { return t0.Add(time.Minute) },
			}
			if err := checker.CheckCert("root@db1", cert); err != nil {
				t.Fatalf("CheckCert: %v", err)
			}
			if err := checker.CheckCert("root@db2", cert); err == nil {
				t.Fatal("CheckCert accepted a principal not in the certificate")
			}
			// The -cert.pub line parses back to the same certificate.
			parsed, _, _, rest, err := ssh.ParseAuthorizedKey(FormatCert(cert))
			if err != nil || len(rest) != 0 {
				t.Fatalf("ParseAuthorizedKey(FormatCert): %v, rest %q", err, rest)
			}
			if !bytes.Equal(parsed.Marshal(), cert.Marshal()) {
				t.Fatal("FormatCert does not round-trip")
			}
			if !strings.HasSuffix(string(FormatCert(cert)), " alice req-1\n") {
				t.Fatalf("FormatCert = %q, want the key id as comment", FormatCert(cert))
			}
		})
	}
}

func TestSignUserCertRefusesBadCA(t *testing.T) {
	user := testkit.Signer(t).PublicKey()
	hostKey := testkit.Signer(t)
	hostCert, err := SignHostCert(testkit.Signer(t), hostSpec(hostKey.PublicKey(), "db1"))
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := HostCertSigner(hostKey, hostCert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		signer  ssh.Signer
		wantErr string
	}{
		{name: "nil signer", signer: nil, wantErr: "ca signer missing"},
		{name: "certificate as authority", signer: hostSigner, wantErr: "ca key: public key is a certificate"},
		{name: "signer returns a corrupt signature", signer: brokenSigner{Signer: testkit.Signer(t), corrupt: true},
			wantErr: "signature does not verify"},
		{name: "signer signs with another key", signer: brokenSigner{Signer: testkit.Signer(t), other: testkit.Signer(t)},
			wantErr: "signature does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SignUserCert(tt.signer, validSpec(user))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SignUserCert error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// brokenSigner claims its Signer's public key but signs with other (when
// set) or flips a bit of the signature (corrupt): what a faulty agent or
// HSM could do.
type brokenSigner struct {
	ssh.Signer
	other   ssh.Signer
	corrupt bool
}

func (b brokenSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	s := b.Signer
	if b.other != nil {
		s = b.other
	}
	sig, err := s.Sign(r, data)
	if err != nil || !b.corrupt {
		return sig, err
	}
	blob := bytes.Clone(sig.Blob)
	blob[len(blob)/2] ^= 1
	return &ssh.Signature{Format: sig.Format, Blob: blob, Rest: sig.Rest}, nil
}

// hostSpec is a valid host certificate spec for key, valid for an hour
// from t0.
func hostSpec(key ssh.PublicKey, principals ...string) HostCertSpec {
	return HostCertSpec{Key: key, Serial: 9, KeyID: "host:" + strings.Join(principals, ","), Principals: principals,
		ValidAfter: t0.Add(-time.Minute), ValidBefore: t0.Add(time.Hour)}
}

func TestHostCertSigner(t *testing.T) {
	hostCA := testkit.Signer(t)
	hostKey := testkit.Signer(t)
	cert, err := SignHostCert(hostCA, hostSpec(hostKey.PublicKey(), "bastion.example.com", "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	user, err := SignUserCert(hostCA, validSpec(hostKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     ssh.Signer
		cert    *ssh.Certificate
		wantErr string
	}{
		{name: "bastion", key: hostKey, cert: cert},
		{name: "missing key", key: nil, cert: cert, wantErr: "key missing"},
		{name: "missing certificate", key: hostKey, cert: nil, wantErr: "certificate missing"},
		{name: "user certificate", key: hostKey, cert: user, wantErr: "not a host certificate"},
		{name: "certificate of another key", key: testkit.Signer(t), cert: cert, wantErr: "different public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := HostCertSigner(tt.key, tt.cert)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("HostCertSigner error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("HostCertSigner: %v", err)
			}
			if !bytes.Equal(signer.PublicKey().Marshal(), cert.Marshal()) {
				t.Error("signer does not present the certificate")
			}
			checker := ssh.CertChecker{
				IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
					return bytes.Equal(auth.Marshal(), hostCA.PublicKey().Marshal())
				},
				Clock: func() time.Time { return t0 },
			}
			if err := checker.CheckHostKey("bastion.example.com:22", nil, signer.PublicKey()); err != nil {
				t.Fatalf("CheckHostKey: %v", err)
			}
			if err := checker.CheckHostKey("other.example.com:22", nil, signer.PublicKey()); err == nil {
				t.Fatal("CheckHostKey accepted a host name not in the certificate")
			}
		})
	}
}

// zeroThenReader returns zeros for the first n reads, then delegates.
type zeroThenReader struct {
	n int
	r io.Reader
}

func (z *zeroThenReader) Read(p []byte) (int, error) {
	if z.n > 0 {
		z.n--
		clear(p)
		return len(p), nil
	}
	return z.r.Read(p)
}

func TestNewSerial(t *testing.T) {
	tests := []struct {
		name    string
		r       io.Reader
		want    uint64 // 0: any non-zero value
		wantErr string
	}{
		{name: "top bit cleared", r: bytes.NewReader(bytes.Repeat([]byte{0xff}, 8)), want: 1<<63 - 1},
		{name: "big endian", r: bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 1, 2}), want: 0x0102},
		{name: "zero draws are retried", r: &zeroThenReader{n: 3, r: bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 5})}, want: 5},
		{name: "only top bit set is zero, retried", r: bytes.NewReader([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6}), want: 6},
		{name: "crypto rand by default", r: nil},
		{name: "always zero", r: &zeroThenReader{n: 1000}, wantErr: "only zeros"},
		{name: "short read", r: bytes.NewReader([]byte{1, 2, 3}), wantErr: "new serial: unexpected EOF"},
		{name: "read error", r: iotest.ErrReader(errors.New("entropy gone")), wantErr: "new serial: entropy gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewSerial(tt.r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewSerial = %d, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSerial: %v", err)
			}
			if got == 0 || got>>63 != 0 {
				t.Fatalf("NewSerial = %#x, want non-zero 63-bit", got)
			}
			if tt.want != 0 && got != tt.want {
				t.Fatalf("NewSerial = %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestPublicKeyLine(t *testing.T) {
	k := testkit.Signer(t).PublicKey()
	base := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
	tests := []struct {
		name    string
		comment string
		want    string
	}{
		{name: "comment", comment: "jitssh user CA", want: base + " jitssh user CA"},
		{name: "no comment", comment: "", want: base},
		{name: "newline in comment cannot start a second line", comment: "a\nssh-ed25519 AAAA", want: base + " a ssh-ed25519 AAAA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PublicKeyLine(k, tt.comment); got != tt.want {
				t.Fatalf("PublicKeyLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSignHostCert(t *testing.T) {
	hostCA := testkit.Signer(t)
	hostKey := testkit.Signer(t).PublicKey()
	tests := []struct {
		name    string
		edit    func(*HostCertSpec)
		wantErr string
	}{
		{name: "target host key"},
		{name: "missing key", edit: func(s *HostCertSpec) { s.Key = nil }, wantErr: "key: missing"},
		{name: "rsa 1024 key", edit: func(s *HostCertSpec) { s.Key = testkit.RSAPublic(t, 1024) }, wantErr: "rsa key of 1024 bits"},
		{name: "zero serial", edit: func(s *HostCertSpec) { s.Serial = 0 }, wantErr: "serial: must not be 0"},
		{name: "empty key id", edit: func(s *HostCertSpec) { s.KeyID = "" }, wantErr: "key id: empty"},
		{name: "no principals", edit: func(s *HostCertSpec) { s.Principals = nil }, wantErr: "principals: none given"},
		{name: "comma principal", edit: func(s *HostCertSpec) { s.Principals = []string{"db1,db2"} }, wantErr: `character ',' not allowed`},
		{name: "wildcard principal", edit: func(s *HostCertSpec) { s.Principals = []string{"*.example.com"} }, wantErr: `character '*' not allowed`},
		{name: "@ in host principal", edit: func(s *HostCertSpec) { s.Principals = []string{"root@db1"} }, wantErr: "'@' not allowed"},
		{name: "zero validity", edit: func(s *HostCertSpec) { s.ValidBefore = s.ValidAfter }, wantErr: "is not after valid after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := hostSpec(hostKey, "db1", "db1.example.com")
			if tt.edit != nil {
				tt.edit(&spec)
			}
			cert, err := SignHostCert(hostCA, spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SignHostCert error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cert.CertType != ssh.HostCert || cert.Serial != 9 || cert.KeyId != "host:db1,db1.example.com" || !bytes.Equal(cert.Key.Marshal(), hostKey.Marshal()) {
				t.Fatalf("cert type %d serial %d key id %q", cert.CertType, cert.Serial, cert.KeyId)
			}
			checker := ssh.CertChecker{
				IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
					return bytes.Equal(auth.Marshal(), hostCA.PublicKey().Marshal())
				},
				Clock: func() time.Time { return t0.Add(59 * time.Minute) },
			}
			if err := checker.CheckHostKey("db1.example.com:22", nil, cert); err != nil {
				t.Fatalf("CheckHostKey: %v", err)
			}
			checker.Clock = func() time.Time { return t0.Add(time.Hour) }
			if err := checker.CheckHostKey("db1:22", nil, cert); err == nil {
				t.Fatal("CheckHostKey accepted the certificate at its ValidBefore")
			}
		})
	}
}
