package grant_test

import (
	"context"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// A certificate's status is its owner's (and admins' and auditors') to
// read, says revoked or expired as the store and the clock say, and is
// "unknown" to anyone else, as for serials never issued.
func TestGrantStatus(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		caller    string
		edit      func(t *testing.T, e *env, serial uint64)
		wantState string
		wantCode  string
	}{
		{name: "owner, valid", caller: "alice", wantState: grant.CertValid},
		{name: "auditor", caller: "aud", wantState: grant.CertValid},
		{name: "admin", caller: "boss", wantState: grant.CertValid},
		{name: "another user", caller: "carol", wantCode: grant.CodeCertificateUnknown},
		{name: "revoked", caller: "alice", wantState: grant.CertRevoked, edit: func(t *testing.T, e *env, serial uint64) {
			if err := e.store.Do(ctx, func(tx *audit.Tx) error { return tx.RevokeCertificate(serial, start, "key lost") }); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "expired", caller: "alice", wantState: grant.CertExpired, edit: func(_ *testing.T, e *env, _ uint64) { e.clock.Advance(time.Hour) }},
		{name: "never issued", caller: "alice", wantCode: grant.CodeCertificateUnknown, edit: func(_ *testing.T, e *env, _ uint64) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			res, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 42"))
			if err != nil {
				t.Fatal(err)
			}
			serial := res.Certificate.Serial
			if tc.edit != nil {
				tc.edit(t, e, serial)
			}
			if tc.name == "never issued" {
				serial++
			}
			st, err := e.svc.GrantStatus(ctx, grant.Caller{User: tc.caller}, serial)
			if tc.wantCode != "" {
				wantError(t, err, grant.KindNotFound, tc.wantCode)
				return
			}
			if err != nil || st.State != tc.wantState || st.Certificate.Serial != serial {
				t.Fatalf("status: %+v, %v; want state %s", st, err, tc.wantState)
			}
		})
	}
}
