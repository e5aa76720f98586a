package issuance_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/issuance"
	"github.com/jitssh/jitssh/issuance/issuancetest"
)

var t0 = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)

type env struct {
	store *audit.Store
	keys  *ca.Keys // the real keys; the Issuer's are wrapped in probes
	probe map[string]*issuancetest.Probe
	iss   *issuance.Issuer
}

// newEnv returns an Issuer over a fresh store whose CA keys are probes;
// fail makes every probe refuse to sign. rnd nil means crypto/rand.
func newEnv(t *testing.T, fail bool, rnd io.Reader) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := audit.Open(filepath.Join(dir, "jitssh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, _, err := ca.InitKeys(filepath.Join(dir, "ca"), "ed25519")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, keys: keys, probe: map[string]*issuancetest.Probe{}}
	for kind, s := range map[string]ssh.Signer{issuance.KindUser: keys.User, issuance.KindTarget: keys.Target, issuance.KindHost: keys.Host} {
		e.probe[kind] = &issuancetest.Probe{Signer: s, Store: store, Fail: fail}
	}
	e.iss, err = issuance.New(issuance.Config{
		Store: store, Rand: rnd, Clock: func() time.Time { return t0.Add(time.Second) },
		Keys: &ca.Keys{User: e.probe[issuance.KindUser], Target: e.probe[issuance.KindTarget], Host: e.probe[issuance.KindHost]},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// kind is one way of issuing: what to call and what the record must say.
type kind struct {
	name, kind, issued, failed, code string
	ca                               func(*ca.Keys) ssh.Signer
	issue                            func(e *env, key ssh.PublicKey, rec issuance.Record) (*ssh.Certificate, error)
	ext                              map[string]string
}

func userSpec(key ssh.PublicKey, principal string) ca.UserCertSpec {
	return ca.UserCertSpec{Key: key, KeyID: "jit:req_1:alice", Principals: []string{principal},
		ValidAfter: t0.Add(-time.Minute), ValidBefore: t0.Add(10 * time.Minute),
		Extensions: map[string]string{"permit-pty": "", "permit-port-forwarding": ""}}
}

func kinds() []kind {
	ext := map[string]string{"permit-pty": "", "permit-port-forwarding": ""}
	host := func(e *env, key ssh.PublicKey, rec issuance.Record) (*ssh.Certificate, error) {
		return e.iss.Host(context.Background(), issuance.HostSpec(key, []string{"db1", "10.0.0.5"}, time.Hour, t0), rec)
	}
	return []kind{
		{name: "user", kind: "user", issued: "cert.issued", failed: "cert.failed", code: "allowed", ext: ext,
			ca: func(k *ca.Keys) ssh.Signer { return k.User },
			issue: func(e *env, key ssh.PublicKey, rec issuance.Record) (*ssh.Certificate, error) {
				return e.iss.User(context.Background(), userSpec(key, "root@db1"), rec)
			}},
		{name: "target", kind: "target", issued: "target_cert.issued", failed: "target_cert.failed", code: "session", ext: ext,
			ca: func(k *ca.Keys) ssh.Signer { return k.Target },
			issue: func(e *env, key ssh.PublicKey, rec issuance.Record) (*ssh.Certificate, error) {
				return e.iss.Target(context.Background(), userSpec(key, "root@db1"), rec)
			}},
		{name: "target host", kind: "host", issued: "host_cert.issued", failed: "host_cert.failed", code: "target",
			ca: func(k *ca.Keys) ssh.Signer { return k.Host }, issue: host},
		{name: "bastion host", kind: "host", issued: "host_cert.issued", failed: "host_cert.failed", code: "bastion",
			ca: func(k *ca.Keys) ssh.Signer { return k.Host }, issue: host},
	}
}

// Every kind of certificate has its row and its event committed, with
// whatever Pre wrote, before the CA is asked to sign it; the row and the
// event say what was signed.
func TestRecordsBeforeSigning(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, false, nil)
			key := testkit.Signer(t).PublicKey()
			var preSerial uint64
			rec := issuance.Record{
				Certificate: audit.Certificate{RequestID: "req_1", User: "alice", Host: "db1", IssuedAt: t0},
				Event:       audit.Event{Code: k.code, Actor: "alice", Host: "db1", RequestID: "req_1", Data: map[string]string{"role": "prod"}},
				Pre: func(tx *audit.Tx, serial uint64) error {
					preSerial = serial
					_, err := tx.Append(audit.Event{Time: t0, Type: "test.pre", Serial: serial})
					return err
				},
			}
			cert, err := k.issue(e, key, rec)
			if err != nil {
				t.Fatalf("issue: %v", err)
			}
			if !bytes.Equal(cert.SignatureKey.Marshal(), k.ca(e.keys).PublicKey().Marshal()) {
				t.Errorf("signed by %s, want the %s CA", ssh.FingerprintSHA256(cert.SignatureKey), k.kind)
			}
			row := e.probe[k.kind].RecordedBeforeSigning(t, cert.Serial, k.kind, k.issued)
			e.probe[k.kind].RecordedBeforeSigning(t, cert.Serial, k.kind, "test.pre")
			if preSerial != cert.Serial {
				t.Errorf("Pre was given serial %d, the certificate has %d", preSerial, cert.Serial)
			}
			want := audit.Certificate{Serial: cert.Serial, Kind: k.kind, RequestID: "req_1", User: "alice", Host: "db1",
				Principals: cert.ValidPrincipals, KeyFingerprint: ssh.FingerprintSHA256(key), KeyID: cert.KeyId,
				ValidAfter: time.Unix(int64(cert.ValidAfter), 0).UTC(), ValidBefore: time.Unix(int64(cert.ValidBefore), 0).UTC(),
				IssuedAt: t0, Extensions: k.ext}
			if row.ValidAfter, row.ValidBefore = row.ValidAfter.UTC(), row.ValidBefore.UTC(); !reflect.DeepEqual(row, want) {
				t.Errorf("row %+v, want %+v", row, want)
			}
			evs, err := e.store.Events(context.Background(), audit.EventFilter{Type: k.issued})
			if err != nil || len(evs) != 1 {
				t.Fatalf("%s events %+v, %v; want one", k.issued, evs, err)
			}
			ev := evs[0]
			wantData := map[string]string{"role": "prod", "principals": "", "key_id": cert.KeyId, "key_fingerprint": ssh.FingerprintSHA256(key),
				"valid_after": want.ValidAfter.Format(time.RFC3339), "valid_before": want.ValidBefore.Format(time.RFC3339)}
			wantData["principals"] = cert.ValidPrincipals[0]
			for _, p := range cert.ValidPrincipals[1:] {
				wantData["principals"] += "," + p
			}
			if ev.Serial != cert.Serial || ev.Code != k.code || ev.Actor != "alice" || !ev.Time.Equal(t0) || !reflect.DeepEqual(ev.Data, wantData) {
				t.Errorf("event %+v, want serial %d code %s data %v", ev, cert.Serial, k.code, wantData)
			}
		})
	}
}

// When the CA cannot sign, the failure is recorded and the serial revoked,
// for every kind; nothing is returned but the error.
func TestSigningFailureIsRecorded(t *testing.T) {
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, true, nil)
			cert, err := k.issue(e, testkit.Signer(t).PublicKey(), issuance.Record{Event: audit.Event{Code: k.code, Actor: "alice", RequestID: "req_1"}})
			if !errors.Is(err, issuance.ErrSigning) || !errors.Is(err, issuancetest.ErrCannotSign) || cert != nil {
				t.Fatalf("issue = %v, %v; want ErrSigning wrapping the signer's error", cert, err)
			}
			rows, err := e.store.Certificates(context.Background(), audit.CertificateFilter{})
			if err != nil || len(rows) != 1 {
				t.Fatalf("rows %+v, %v; want the one recorded", rows, err)
			}
			if rows[0].RevokedAt.IsZero() || rows[0].RevokeReason != "signing failed" {
				t.Errorf("row %+v, want revoked for the signing failure", rows[0])
			}
			e.probe[k.kind].RecordedBeforeSigning(t, rows[0].Serial, k.kind, k.issued)
			failed, err := e.store.Events(context.Background(), audit.EventFilter{Type: k.failed})
			if err != nil || len(failed) != 1 {
				t.Fatalf("%s events %+v, %v; want one", k.failed, failed, err)
			}
			if f := failed[0]; f.Serial != rows[0].Serial || f.Code != issuance.CodeSigningFailed || f.Actor != "alice" || f.RequestID != "req_1" {
				t.Errorf("failure event %+v", f)
			}
			if res, err := e.store.Verify(context.Background()); err != nil || !res.OK {
				t.Errorf("audit chain after a failure: %+v, %v", res, err)
			}
		})
	}
}

// scripted hands out fixed serials (8 bytes each), then fails.
type scripted struct{ serials []uint64 }

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.serials) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	v := s.serials[0]
	s.serials = s.serials[1:]
	for i := 7; i >= 0; i-- {
		p[i] = byte(v)
		v >>= 8
	}
	return 8, nil
}

// Refusals before the record: nothing is recorded and nothing signed.
func TestRefusedBeforeRecording(t *testing.T) {
	errPre := errors.New("request changed state")
	tests := []struct {
		name    string
		rnd     io.Reader
		prior   []uint64
		close   bool
		spec    func(ssh.PublicKey) ca.UserCertSpec
		pre     func(*audit.Tx, uint64) error
		wantIs  []error
		wantRow uint64 // the serial recorded, when the issuance succeeds
	}{
		{name: "serial collision draws again", rnd: &scripted{serials: []uint64{7, 8}}, prior: []uint64{7}, wantRow: 8},
		{name: "three collisions give up", rnd: &scripted{serials: []uint64{7, 7, 7, 8}}, prior: []uint64{7},
			wantIs: []error{issuance.ErrRecord, audit.ErrConflict}},
		{name: "invalid spec", spec: func(k ssh.PublicKey) ca.UserCertSpec { return userSpec(k, "root@*") },
			wantIs: []error{issuance.ErrInvalid}},
		{name: "pre refuses", pre: func(*audit.Tx, uint64) error { return errPre }, wantIs: []error{issuance.ErrRecord, errPre}},
		{name: "store closed", close: true, wantIs: []error{issuance.ErrRecord, audit.ErrClosed}},
		{name: "no randomness", rnd: &scripted{}, wantIs: []error{io.ErrUnexpectedEOF}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, false, tt.rnd)
			for _, s := range tt.prior {
				if err := e.store.Do(context.Background(), func(tx *audit.Tx) error {
					return tx.InsertCertificate(audit.Certificate{Serial: s, Kind: "host", IssuedAt: t0})
				}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.close {
				e.store.Close()
			}
			spec := userSpec(testkit.Signer(t).PublicKey(), "root@db1")
			if tt.spec != nil {
				spec = tt.spec(spec.Key)
			}
			cert, err := e.iss.User(context.Background(), spec, issuance.Record{Pre: tt.pre})
			if tt.wantIs == nil {
				if err != nil || cert.Serial != tt.wantRow {
					t.Fatalf("User = serial %v, %v; want serial %d", cert, err, tt.wantRow)
				}
				e.probe["user"].RecordedBeforeSigning(t, tt.wantRow, "user", "cert.issued")
				return
			}
			for _, want := range tt.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("error %v does not match %v", err, want)
				}
			}
			if cert != nil || e.probe["user"].Calls() != 0 {
				t.Errorf("certificate %v, %d signatures after a refusal", cert, e.probe["user"].Calls())
			}
			if tt.close {
				return
			}
			rows, err := e.store.Certificates(context.Background(), audit.CertificateFilter{Kind: "user"})
			if err != nil || len(rows) != 0 {
				t.Errorf("user rows %+v, %v; want none", rows, err)
			}
		})
	}
}

// A kind whose CA key is not configured is refused before anything is
// recorded.
func TestMissingCAKey(t *testing.T) {
	e := newEnv(t, false, nil)
	iss, err := issuance.New(issuance.Config{Store: e.store, Keys: &ca.Keys{User: e.keys.User}})
	if err != nil {
		t.Fatal(err)
	}
	key := testkit.Signer(t).PublicKey()
	if _, err := iss.Target(context.Background(), userSpec(key, "root@db1"), issuance.Record{}); err == nil {
		t.Error("Target signed without a target CA key")
	}
	if _, err := iss.Host(context.Background(), issuance.HostSpec(key, []string{"db1"}, time.Hour, t0), issuance.Record{}); err == nil {
		t.Error("Host signed without a host CA key")
	}
	rows, err := e.store.Certificates(context.Background(), audit.CertificateFilter{})
	if err != nil || len(rows) != 0 {
		t.Errorf("rows %+v, %v; want none", rows, err)
	}
	if _, err := issuance.New(issuance.Config{Keys: e.keys}); err == nil {
		t.Error("New accepted a config without a store")
	}
}

func TestHostSpec(t *testing.T) {
	key := testkit.Signer(t).PublicKey()
	got := issuance.HostSpec(key, []string{"db1", "10.0.0.5"}, time.Hour, t0)
	if got.KeyID != "host:db1,10.0.0.5" || !slices.Equal(got.Principals, []string{"db1", "10.0.0.5"}) ||
		!got.ValidAfter.Equal(t0.Add(-time.Minute)) || !got.ValidBefore.Equal(t0.Add(time.Hour)) || !bytes.Equal(got.Key.Marshal(), key.Marshal()) {
		t.Errorf("HostSpec = %+v", got)
	}
}
