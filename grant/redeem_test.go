package grant_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func TestRedeemPolicyChanged(t *testing.T) {
	tests := []struct {
		name  string
		edits []string
		want  bool // true: still issued
	}{
		{name: "unrelated change", edits: []string{"carol: {groups: [dev]}", "carol: {groups: [ops]}"}, want: true},
		{name: "role renamed", edits: []string{"name: prod-root", "name: prod-root-v2"}},
		{name: "host relabelled", edits: []string{"db1: {address: \"127.0.0.1:22\", labels: {env: prod}}", "db1: {address: \"127.0.0.1:22\", labels: {env: test}}"}},
		{name: "host removed", edits: []string{"  db1: {address: \"127.0.0.1:22\", labels: {env: prod}}\n", ""}},
		{name: "user left the group", edits: []string{"alice: {groups: [dev]}", "alice: {groups: [ops]}"}},
		{name: "user removed", edits: []string{"  alice: {groups: [dev]}\n", ""}},
		{name: "login removed from the role", edits: []string{"logins: [root]\n    ttl: 10m", "logins: [admin]\n    ttl: 10m"}},
		{name: "max ttl lowered below the request", edits: []string{"ttl: 10m\n    max_ttl: 30m\n    record_input", "ttl: 5m\n    max_ttl: 5m\n    record_input"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			id := e.approved(t)
			e.pol.Store(parsePolicy(t, tt.edits...))
			res, err := e.svc.Redeem(ctx, alice, id)
			if tt.want {
				if err != nil || res.Certificate == nil {
					t.Fatalf("Redeem after an unrelated change: %v", err)
				}
				return
			}
			wantError(t, err, grant.KindDenied, grant.CodePolicyChanged)
			if res.Certificate != nil {
				t.Error("a certificate was issued")
			}
			if rows := e.certRows(t, audit.CertificateFilter{}); len(rows) != 0 {
				t.Errorf("%d certificate rows after a refused redemption", len(rows))
			}
			evs := e.events(t, audit.EventFilter{RequestID: id, Type: "request.denied"})
			if len(evs) != 1 || evs[0].Code != grant.CodePolicyChanged || evs[0].Actor != "alice" {
				t.Errorf("request.denied events %+v, want one with policy_changed", evs)
			}
		})
	}
}

func TestRedeemExpired(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		wantErr bool
	}{
		{name: "a second before redeem_ttl", advance: 10*time.Minute - time.Second},
		{name: "at redeem_ttl", advance: 10 * time.Minute, wantErr: true},
		{name: "long after", advance: 24 * time.Hour, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			id := e.approved(t)
			e.clock.Advance(tt.advance)
			res, err := e.svc.Redeem(ctx, alice, id)
			if !tt.wantErr {
				if err != nil || res.Certificate == nil {
					t.Fatalf("Redeem in time: %v", err)
				}
				return
			}
			wantError(t, err, grant.KindConflict, grant.CodeRequestExpired)
			if r := e.stored(t, id); r.State != grant.StateExpired {
				t.Errorf("state %q after a late redemption, want expired", r.State)
			}
			if got, want := e.eventTypes(t, id), []string{"request.created", "request.approved", "request.expired"}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
			if notes := e.notes.events(); notes[len(notes)-1] != "request.expired" {
				t.Errorf("notifications %q, want request.expired last", notes)
			}
			if rows := e.certRows(t, audit.CertificateFilter{}); len(rows) != 0 {
				t.Errorf("%d certificate rows", len(rows))
			}
		})
	}
}

func TestRedeemUnknown(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.Redeem(context.Background(), alice, "req_nosuch")
	wantError(t, err, grant.KindNotFound, grant.CodeNotFound)
}

func TestExpireDue(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	pendingOld := e.pending(t, "alice", "root") // waits until start+30m
	approved := e.approved(t)                   // to be redeemed by start+10m
	e.clock.Advance(15 * time.Minute)
	pendingNew := e.pending(t, "carol", "root") // waits until start+45m
	issued := e.approved(t)
	if _, err := e.svc.Redeem(ctx, alice, issued); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name        string
		advance     time.Duration
		wantExpired []string
	}{
		{name: "unredeemed approval", wantExpired: []string{approved}},
		{name: "nothing more is due", advance: 14 * time.Minute},
		{name: "pending past its wait", advance: time.Minute, wantExpired: []string{pendingOld}},
		{name: "the later one", advance: 15 * time.Minute, wantExpired: []string{pendingNew}},
		{name: "idempotent", advance: time.Hour},
	}
	for _, st := range steps {
		e.clock.Advance(st.advance)
		before := len(e.notes.all())
		n, err := e.svc.ExpireDue(ctx)
		if err != nil || n != len(st.wantExpired) {
			t.Fatalf("%s: ExpireDue = %d, %v; want %d", st.name, n, err, len(st.wantExpired))
		}
		notes := e.notes.all()[before:]
		if len(notes) != len(st.wantExpired) {
			t.Fatalf("%s: %d notifications, want %d", st.name, len(notes), len(st.wantExpired))
		}
		for i, id := range st.wantExpired {
			if notes[i].Event != "request.expired" || notes[i].Request.ID != id || notes[i].Request.State != grant.StateExpired {
				t.Errorf("%s: notification %+v, want request.expired of %s", st.name, notes[i], id)
			}
			if r := e.stored(t, id); r.State != grant.StateExpired {
				t.Errorf("%s: %s is %s, want expired", st.name, id, r.State)
			}
			evs := e.events(t, audit.EventFilter{RequestID: id, Type: "request.expired"})
			if len(evs) != 1 || evs[0].Actor != "jitd" {
				t.Errorf("%s: request.expired events of %s: %+v", st.name, id, evs)
			}
		}
	}
	if r := e.stored(t, issued); r.State != grant.StateIssued {
		t.Errorf("issued request became %s", r.State)
	}
}
