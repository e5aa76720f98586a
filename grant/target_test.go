package grant_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/issuance/issuancetest"
)

// staging issues alice a certificate for deploy@web1 (role staging, which
// grants permit-port-forwarding) and returns a target certificate request
// for a session under it.
func (e *env) staging(t *testing.T) grant.TargetCertRequest {
	t.Helper()
	res, err := e.svc.Create(context.Background(), alice, e.request("web1", "deploy", "deploy release 42"))
	if err != nil {
		t.Fatal(err)
	}
	return grant.TargetCertRequest{
		RequestID: res.Request.ID, SessionID: "ses_123", User: "alice", Login: "deploy", Host: "web1",
		UserSerial: res.Certificate.Serial, UserCert: res.Certificate, ValidBefore: time.Unix(int64(res.Certificate.ValidBefore), 0),
		SourceAddresses: []string{"127.0.0.1/32", "10.1.0.0/16"}, Key: testkit.Signer(t).PublicKey(),
	}
}

func TestMintTargetCert(t *testing.T) {
	tests := []struct {
		name            string
		edit            func(*testing.T, *env, *grant.TargetCertRequest)
		wantValidBefore time.Time
		wantKind        grant.Kind
		wantCode        string
	}{
		{name: "within the engineer's certificate", wantValidBefore: start.Add(10 * time.Minute)},
		{name: "never beyond the issued certificate", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.ValidBefore = start.Add(72 * time.Hour) },
			wantValidBefore: start.Add(10 * time.Minute)},
		{name: "engineer's certificate expires now", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.ValidBefore = start },
			wantKind: grant.KindDenied, wantCode: "certificate_expired"},
		{name: "engineer's certificate expired", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.ValidBefore = start.Add(-time.Hour) },
			wantKind: grant.KindDenied, wantCode: "certificate_expired"},
		{name: "no key", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.Key = nil },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "source address not a CIDR", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) {
			r.SourceAddresses = []string{"bastion.example"}
		},
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "no session id", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.SessionID = "" },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "unknown engineer's certificate", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.UserSerial, r.UserCert = 12345, nil },
			wantKind: grant.KindNotFound, wantCode: grant.CodeCertificateUnknown},
		{name: "login the certificate was not issued for", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.Login = "root" },
			wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateUnknown},
		{name: "wildcard login", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.Login = "*" },
			wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateUnknown},
		{name: "another user", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.User = "carol" },
			wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateUnknown},
		{name: "another request", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.RequestID = "req_other" },
			wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateUnknown},
		{name: "presented certificate differs from the issued one", edit: func(t *testing.T, e *env, r *grant.TargetCertRequest) {
			forged := *r.UserCert
			forged.KeyId += ":forged"
			if err := forged.SignCert(rand.Reader, e.keys.User); err != nil {
				t.Fatal(err)
			}
			r.UserCert = &forged
		}, wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateMismatch},
		{name: "presented certificate of another serial", edit: func(_ *testing.T, _ *env, r *grant.TargetCertRequest) { r.UserSerial++ },
			wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateMismatch},
		{name: "revoked engineer's certificate", edit: func(t *testing.T, e *env, r *grant.TargetCertRequest) {
			if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.RevokeCertificate(r.UserSerial, start, "key lost") }); err != nil {
				t.Fatal(err)
			}
		}, wantKind: grant.KindForbidden, wantCode: grant.CodeCertificateRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			req := e.staging(t)
			if tt.edit != nil {
				tt.edit(t, e, &req)
			}
			cert, err := e.svc.MintTargetCert(ctx, req)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, tt.wantCode)
				if cert != nil {
					t.Error("a certificate was returned with the error")
				}
				if rows := e.certRows(t, audit.CertificateFilter{Kind: "target"}); len(rows) != 0 {
					t.Errorf("%d target certificate rows after a refusal", len(rows))
				}
				return
			}
			if err != nil {
				t.Fatalf("MintTargetCert: %v", err)
			}
			checkCert(t, cert, e.keys.Target.PublicKey(), "deploy@web1", start)
			if string(cert.SignatureKey.Marshal()) == string(e.keys.User.PublicKey().Marshal()) {
				t.Error("target certificate signed by the user CA")
			}
			if string(cert.Key.Marshal()) != string(req.Key.Marshal()) {
				t.Error("certificate is for another key")
			}
			if want := "jit:" + req.RequestID + ":ses_123:alice"; !slices.Equal(cert.ValidPrincipals, []string{"deploy@web1"}) || cert.KeyId != want {
				t.Errorf("principals %q key id %q, want deploy@web1 and %q", cert.ValidPrincipals, cert.KeyId, want)
			}
			if got := time.Unix(int64(cert.ValidBefore), 0).UTC(); !got.Equal(tt.wantValidBefore) {
				t.Errorf("valid before %s, want %s", got, tt.wantValidBefore)
			}
			if got := time.Unix(int64(cert.ValidAfter), 0).UTC(); !got.Equal(start.Add(-time.Minute)) {
				t.Errorf("valid after %s, want %s", got, start.Add(-time.Minute))
			}
			if got := cert.CriticalOptions["source-address"]; got != "127.0.0.1/32,10.1.0.0/16" {
				t.Errorf("source-address %q", got)
			}
			if got, want := slices.Sorted(maps.Keys(cert.Extensions)), []string{"permit-port-forwarding", "permit-pty"}; !slices.Equal(got, want) {
				t.Errorf("extensions %q, want %q", got, want)
			}
			row, err := e.store.Certificate(ctx, cert.Serial)
			if err != nil {
				t.Fatalf("certificate row: %v", err)
			}
			if row.Kind != "target" || row.SessionID != "ses_123" || row.RequestID != req.RequestID || row.KeyID != cert.KeyId ||
				!maps.Equal(row.Extensions, cert.Extensions) || !maps.Equal(row.CriticalOptions, cert.CriticalOptions) {
				t.Errorf("certificate row %+v", row)
			}
			evs := e.events(t, audit.EventFilter{SessionID: "ses_123", Type: "target_cert.issued"})
			if len(evs) != 1 || evs[0].Serial != cert.Serial || evs[0].Data["user_serial"] != fmt.Sprint(req.UserSerial) {
				t.Errorf("target_cert.issued events %+v", evs)
			}
		})
	}
}

// A target certificate permits what the engineer's certificate was issued
// with: not what the policy says at the time of the session, and never more
// than the stored record holds.
func TestTargetExtensionsFromIssuance(t *testing.T) {
	tests := []struct {
		name    string
		between func(*testing.T, *env, *grant.TargetCertRequest)
		want    []string
	}{
		{name: "as issued", want: []string{"permit-port-forwarding", "permit-pty"}},
		{name: "policy changed since issuance", between: func(t *testing.T, e *env, _ *grant.TargetCertRequest) {
			e.pol.Store(parsePolicy(t, "extensions: [permit-port-forwarding]", "extensions: [permit-agent-forwarding, permit-X11-forwarding]"))
		}, want: []string{"permit-port-forwarding", "permit-pty"}},
		{name: "issued without port forwarding", between: func(t *testing.T, e *env, r *grant.TargetCertRequest) {
			r.UserSerial, r.UserCert = e.storedUserCert(t, r, map[string]string{"permit-pty": ""}), nil
		}, want: []string{"permit-pty"}},
		{name: "issued with nothing", between: func(t *testing.T, e *env, r *grant.TargetCertRequest) {
			r.UserSerial, r.UserCert = e.storedUserCert(t, r, nil), nil
		}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			req := e.staging(t)
			if tt.between != nil {
				tt.between(t, e, &req)
			}
			cert, err := e.svc.MintTargetCert(context.Background(), req)
			if err != nil {
				t.Fatalf("MintTargetCert: %v", err)
			}
			if got := slices.Sorted(maps.Keys(cert.Extensions)); !slices.Equal(got, tt.want) {
				t.Errorf("extensions %q, want %q", got, tt.want)
			}
		})
	}
}

// storedUserCert records a user certificate row for r's request, user and
// principal with the given extensions, as an older jitd might have, and
// returns its serial.
func (e *env) storedUserCert(t *testing.T, r *grant.TargetCertRequest, ext map[string]string) uint64 {
	t.Helper()
	const serial = 4242
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error {
		return tx.InsertCertificate(audit.Certificate{Serial: serial, Kind: "user", RequestID: r.RequestID, User: r.User,
			Principals: []string{r.Login + "@" + r.Host}, ValidAfter: start.Add(-time.Minute), ValidBefore: r.ValidBefore,
			IssuedAt: start, Extensions: ext})
	}); err != nil {
		t.Fatal(err)
	}
	return serial
}

// The target certificate's row and event are committed before the target CA
// signs; if it cannot sign, the failure is recorded and the serial revoked.
func TestMintTargetCertRecordsBeforeSigning(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("signer fails %v", fail), func(t *testing.T) {
			p := &issuancetest.Probe{Fail: fail}
			e := newEnv(t, func(c *grant.Config) {
				p.Store, p.Signer = c.Store, c.Keys.Target
				keys := *c.Keys
				keys.Target = p
				c.Keys = &keys
			})
			cert, err := e.svc.MintTargetCert(context.Background(), e.staging(t))
			rows := e.certRows(t, audit.CertificateFilter{Kind: "target"})
			if len(rows) != 1 {
				t.Fatalf("target rows %+v, want one", rows)
			}
			p.RecordedBeforeSigning(t, rows[0].Serial, "target", "target_cert.issued")
			if !fail {
				if err != nil || cert.Serial != rows[0].Serial {
					t.Fatalf("MintTargetCert = %v, %v; want serial %d", cert, err, rows[0].Serial)
				}
				return
			}
			wantError(t, err, grant.KindUnavailable, grant.CodeSigningFailed)
			if cert != nil || rows[0].RevokedAt.IsZero() {
				t.Errorf("certificate %v, row %+v; want none and the row revoked", cert, rows[0])
			}
			if evs := e.events(t, audit.EventFilter{Type: "target_cert.failed"}); len(evs) != 1 || evs[0].Serial != rows[0].Serial {
				t.Errorf("target_cert.failed events %+v", evs)
			}
		})
	}
}

func TestMintTargetCertStoreUnavailable(t *testing.T) {
	p := &issuancetest.Probe{}
	e := newEnv(t, func(c *grant.Config) {
		p.Store, p.Signer = c.Store, c.Keys.Target
		keys := *c.Keys
		keys.Target = p
		c.Keys = &keys
	})
	req := e.staging(t)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	cert, err := e.svc.MintTargetCert(context.Background(), req)
	wantError(t, err, grant.KindUnavailable, grant.CodeAuditUnavailable)
	if cert != nil || p.Calls() != 0 {
		t.Errorf("certificate %v, %d signatures with the store closed", cert != nil, p.Calls())
	}
}

func TestCertificateStatus(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	staging, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 42"))
	if err != nil {
		t.Fatal(err)
	}
	id := e.approved(t)
	root, err := e.svc.Redeem(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	target, err := e.svc.MintTargetCert(ctx, grant.TargetCertRequest{
		RequestID: id, SessionID: "ses_1", User: "alice", Login: "root", Host: "db1", UserSerial: root.Certificate.Serial,
		ValidBefore: start.Add(5 * time.Minute), Key: testkit.Signer(t).PublicKey(),
	})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := e.svc.Create(ctx, alice, e.request("db1", "reader", "read the logs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.RevokeCertificate(revoked.Certificate.Serial, start, "key lost")
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name            string
		serial          uint64
		wantRole        string
		wantRecordInput bool
		wantRevoked     bool
		wantKind        grant.Kind
	}{
		{name: "issued at once", serial: staging.Certificate.Serial, wantRole: "staging"},
		{name: "redeemed, role records input", serial: root.Certificate.Serial, wantRole: "prod-root", wantRecordInput: true},
		{name: "revoked", serial: revoked.Certificate.Serial, wantRole: "prod-reader", wantRevoked: true},
		{name: "unknown serial", serial: 12345, wantKind: grant.KindNotFound},
		{name: "target certificate", serial: target.Serial, wantKind: grant.KindForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := e.svc.CertificateStatus(ctx, tt.serial)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, grant.CodeCertificateUnknown)
				return
			}
			if err != nil {
				t.Fatalf("CertificateStatus: %v", err)
			}
			if st.Serial != tt.serial || st.User != "alice" || st.Kind != "user" || st.Role != tt.wantRole ||
				st.RecordInput != tt.wantRecordInput || st.RevokedAt.IsZero() == tt.wantRevoked {
				t.Errorf("status %+v, want role %s record input %v revoked %v", st, tt.wantRole, tt.wantRecordInput, tt.wantRevoked)
			}
		})
	}
}
