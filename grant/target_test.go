package grant_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func TestMintTargetCert(t *testing.T) {
	tests := []struct {
		name            string
		edit            func(*grant.TargetCertRequest)
		wantValidBefore time.Time
		wantExt         []string
		wantKind        grant.Kind
		wantCode        string
	}{
		{name: "within the engineer's certificate", wantValidBefore: start.Add(10 * time.Minute), wantExt: []string{"permit-pty"}},
		{name: "granted extensions carried over", edit: func(r *grant.TargetCertRequest) {
			r.Extensions = map[string]string{"permit-port-forwarding": ""}
		}, wantValidBefore: start.Add(10 * time.Minute), wantExt: []string{"permit-port-forwarding", "permit-pty"}},
		{name: "capped at a day", edit: func(r *grant.TargetCertRequest) { r.ValidBefore = start.Add(72 * time.Hour) },
			wantValidBefore: start.Add(24 * time.Hour), wantExt: []string{"permit-pty"}},
		{name: "engineer's certificate expires now", edit: func(r *grant.TargetCertRequest) { r.ValidBefore = start },
			wantKind: grant.KindDenied, wantCode: "certificate_expired"},
		{name: "engineer's certificate expired", edit: func(r *grant.TargetCertRequest) { r.ValidBefore = start.Add(-time.Hour) },
			wantKind: grant.KindDenied, wantCode: "certificate_expired"},
		{name: "no key", edit: func(r *grant.TargetCertRequest) { r.Key = nil },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "unknown extension", edit: func(r *grant.TargetCertRequest) { r.Extensions = map[string]string{"no-touch-required": ""} },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "source address not a CIDR", edit: func(r *grant.TargetCertRequest) { r.SourceAddresses = []string{"bastion.example"} },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "wildcard login", edit: func(r *grant.TargetCertRequest) { r.Login = "*" },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "empty host", edit: func(r *grant.TargetCertRequest) { r.Host = "" },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
		{name: "no session id", edit: func(r *grant.TargetCertRequest) { r.SessionID = "" },
			wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			sessionKey := newKey(t)
			req := grant.TargetCertRequest{
				RequestID: "req_abc", SessionID: "ses_123", User: "alice", Login: "root", Host: "db1",
				ValidBefore: start.Add(10 * time.Minute), SourceAddresses: []string{"127.0.0.1/32", "10.1.0.0/16"}, Key: sessionKey,
			}
			if tt.edit != nil {
				tt.edit(&req)
			}
			cert, err := e.svc.MintTargetCert(ctx, req)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, tt.wantCode)
				if cert != nil {
					t.Error("a certificate was returned with the error")
				}
				if rows := e.certRows(t, audit.CertificateFilter{}); len(rows) != 0 {
					t.Errorf("%d certificate rows after a refusal", len(rows))
				}
				return
			}
			if err != nil {
				t.Fatalf("MintTargetCert: %v", err)
			}
			checkCert(t, cert, e.keys.Target.PublicKey(), "root@db1", start)
			if string(cert.SignatureKey.Marshal()) == string(e.keys.User.PublicKey().Marshal()) {
				t.Error("target certificate signed by the user CA")
			}
			if string(cert.Key.Marshal()) != string(sessionKey.Marshal()) {
				t.Error("certificate is for another key")
			}
			if !slices.Equal(cert.ValidPrincipals, []string{"root@db1"}) || cert.KeyId != "jit:req_abc:ses_123:alice" {
				t.Errorf("principals %q key id %q", cert.ValidPrincipals, cert.KeyId)
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
			if got := slices.Sorted(maps.Keys(cert.Extensions)); !slices.Equal(got, tt.wantExt) {
				t.Errorf("extensions %q, want %q", got, tt.wantExt)
			}
			row, err := e.store.Certificate(ctx, cert.Serial)
			if err != nil {
				t.Fatalf("certificate row: %v", err)
			}
			if row.Kind != "target" || row.SessionID != "ses_123" || row.RequestID != "req_abc" || row.KeyID != cert.KeyId {
				t.Errorf("certificate row %+v", row)
			}
			evs := e.events(t, audit.EventFilter{SessionID: "ses_123", Type: "target_cert.issued"})
			if len(evs) != 1 || evs[0].Serial != cert.Serial {
				t.Errorf("target_cert.issued events %+v", evs)
			}
		})
	}
}

func TestMintTargetCertStoreUnavailable(t *testing.T) {
	p := &probeSigner{}
	e := newEnv(t, func(c *grant.Config) {
		p.store, p.Signer = c.Store, c.Keys.Target
		keys := *c.Keys
		keys.Target = p
		c.Keys = &keys
	})
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	cert, err := e.svc.MintTargetCert(context.Background(), grant.TargetCertRequest{
		RequestID: "req_abc", SessionID: "ses_123", User: "alice", Login: "root", Host: "db1",
		ValidBefore: start.Add(time.Minute), Key: newKey(t),
	})
	wantError(t, err, grant.KindUnavailable, grant.CodeAuditUnavailable)
	if cert != nil || p.calls != 0 {
		t.Errorf("certificate %v, %d signatures with the store closed", cert != nil, p.calls)
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
		RequestID: id, SessionID: "ses_1", User: "alice", Login: "root", Host: "db1",
		ValidBefore: start.Add(5 * time.Minute), Key: newKey(t),
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
