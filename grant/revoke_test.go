package grant_test

import (
	"context"
	"testing"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/livepolicy"
)

// noReload is a Reloader for Admin tests that do not reload.
type noReload struct{}

func (noReload) ReloadChange(context.Context) (livepolicy.Change, error) {
	return livepolicy.Change{}, nil
}
func (noReload) RefreshUsers(context.Context) error { return nil }

// Revoking an engineer's certificate revokes the unexpired target
// certificates of its sessions too, each with its own cert.revoked, so the
// KRL's target-CA section lists them; another request's are left alone.
func TestRevokeCascadesToTargetCerts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, err := grant.NewAdmin(grant.AdminConfig{Store: e.store, Policy: e.pol.Load, Reloader: noReload{}, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(req grant.TargetCertRequest, session string) uint64 {
		t.Helper()
		req.SessionID = session
		cert, err := e.svc.MintTargetCert(ctx, req)
		if err != nil {
			t.Fatalf("mint target certificate: %v", err)
		}
		return cert.Serial
	}
	revoked := e.staging(t)
	t1, t2 := mint(revoked, "ses_1"), mint(revoked, "ses_2")
	kept := e.staging(t)
	t3 := mint(kept, "ses_3")

	if err := admin.Revoke(ctx, grant.Caller{User: "boss"}, revoked.UserSerial, "laptop stolen"); err != nil {
		t.Fatal(err)
	}
	byKind, err := e.store.RevokedSerialsByKind(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := byKind["user"]; len(got) != 1 || got[0] != revoked.UserSerial {
		t.Errorf("revoked user serials %v, want [%d]", got, revoked.UserSerial)
	}
	want := map[uint64]bool{t1: true, t2: true}
	if got := byKind["target"]; len(got) != 2 || !want[got[0]] || !want[got[1]] {
		t.Errorf("revoked target serials %v, want %d and %d (not %d)", got, t1, t2, t3)
	}
	evs := e.events(t, audit.EventFilter{Type: "cert.revoked"})
	if len(evs) != 3 {
		t.Fatalf("%d cert.revoked events, want 3 (one user, two target)", len(evs))
	}
	for _, ev := range evs {
		if ev.Serial != revoked.UserSerial && (ev.Data["kind"] != "target" || ev.Data["user_serial"] == "") {
			t.Errorf("target revocation event %+v lacks kind and user_serial", ev)
		}
	}
}
