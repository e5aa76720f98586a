package grant_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func TestGetAccess(t *testing.T) {
	tests := []struct {
		name     string
		caller   string
		wantKind grant.Kind
	}{
		{name: "requester", caller: "alice"},
		{name: "approver", caller: "bob"},
		{name: "approver outside dev", caller: "dan"},
		{name: "admin", caller: "boss"},
		{name: "auditor", caller: "aud"},
		{name: "peer who may not approve", caller: "carol", wantKind: grant.KindForbidden},
		{name: "unknown user", caller: "mallory", wantKind: grant.KindForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.pending(t, "alice", "root")
			res, err := e.svc.Get(context.Background(), grant.Caller{User: tt.caller}, id)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, grant.CodeNotOwner)
				return
			}
			if err != nil || res.Request.ID != id || res.Request.State != grant.StatePending {
				t.Fatalf("Get: %+v, %v", res.Request, err)
			}
		})
	}
	t.Run("unknown request", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.svc.Get(context.Background(), alice, "req_nosuch")
		wantError(t, err, grant.KindNotFound, grant.CodeNotFound)
	})
	t.Run("past its deadline shows as expired", func(t *testing.T) {
		e := newEnv(t)
		id := e.pending(t, "alice", "root")
		e.clock.Advance(30 * time.Minute)
		res, err := e.svc.Get(context.Background(), alice, id)
		if err != nil || res.Request.State != grant.StateExpired {
			t.Fatalf("Get after the deadline: state %q, %v; want expired", res.Request.State, err)
		}
	})
}

func TestList(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	aliceRoot := e.pending(t, "alice", "root")
	bobRoot := e.pending(t, "bob", "root")
	e.clock.Advance(time.Second)
	aliceDBA := e.pending(t, "alice", "dba")
	if _, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 42")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		caller   string
		opts     grant.ListOptions
		wantIDs  []string
		wantN    int
		wantKind grant.Kind
	}{
		{name: "own requests", caller: "alice", wantN: 3},
		{name: "pending for an approver skips their own", caller: "bob", opts: grant.ListOptions{Pending: true}, wantIDs: []string{aliceDBA, aliceRoot}},
		{name: "pending for another approver", caller: "dan", opts: grant.ListOptions{Pending: true}, wantIDs: []string{aliceDBA, aliceRoot, bobRoot}},
		{name: "pending for a non-approver", caller: "carol", opts: grant.ListOptions{Pending: true}},
		{name: "break-glass needs admin or auditor", caller: "alice", opts: grant.ListOptions{BreakGlass: true}, wantKind: grant.KindForbidden},
		{name: "break-glass for an approver", caller: "bob", opts: grant.ListOptions{BreakGlass: true}, wantKind: grant.KindForbidden},
		{name: "break-glass for an auditor", caller: "aud", opts: grant.ListOptions{BreakGlass: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := e.svc.List(ctx, grant.Caller{User: tt.caller}, tt.opts)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, "not_auditor")
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			if tt.wantIDs != nil {
				slices.Sort(ids)
				want := slices.Sorted(slices.Values(tt.wantIDs))
				if !slices.Equal(ids, want) {
					t.Errorf("ids %q, want %q", ids, want)
				}
			} else if len(ids) != tt.wantN {
				t.Errorf("%d requests %q, want %d", len(ids), ids, tt.wantN)
			}
		})
	}
	t.Run("pending past the deadline is not listed", func(t *testing.T) {
		e.clock.Advance(30 * time.Minute)
		rs, err := e.svc.List(ctx, dan, grant.ListOptions{Pending: true})
		if err != nil || len(rs) != 0 {
			t.Fatalf("pending after the deadline: %d, %v; want none", len(rs), err)
		}
	})
}

func TestBreakGlass(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	req := e.request("db1", "root", "INC-4711 primary is down")
	req.BreakGlass = true
	res, err := e.svc.Create(ctx, alice, req)
	if err != nil {
		t.Fatalf("break-glass Create: %v", err)
	}
	r := res.Request
	if res.Certificate == nil || r.State != grant.StateIssued || !r.BreakGlass || r.Role != "emergency" {
		t.Fatalf("break-glass request %+v, certificate %v; want issued under emergency, flagged", r, res.Certificate != nil)
	}
	checkCert(t, res.Certificate, e.keys.User.PublicKey(), "root@db1", start)
	if got := time.Unix(int64(res.Certificate.ValidBefore), 0).UTC(); got != start.Add(15*time.Minute) {
		t.Errorf("valid before %s, want the emergency role's 15m", got)
	}
	issued := e.events(t, audit.EventFilter{RequestID: r.ID, Type: "cert.issued"})
	if len(issued) != 1 || issued[0].Data["break_glass"] != "true" {
		t.Errorf("cert.issued events %+v, want one with data break_glass=true", issued)
	}
	created := e.events(t, audit.EventFilter{RequestID: r.ID, Type: "request.created"})
	if len(created) != 1 || created[0].Code != "break_glass" {
		t.Errorf("request.created events %+v, want code break_glass", created)
	}
	notes := e.notes.all()
	if len(notes) != 1 || notes[0].Event != "request.break_glass" || !notes[0].BreakGlass || notes[0].Request.ID != r.ID || notes[0].Actor != "alice" {
		t.Errorf("notifications %+v, want one request.break_glass", notes)
	}

	// The same request without breaking the glass waits for approval.
	plain := e.request("db1", "root", "INC-4711 primary is down")
	res, err = e.svc.Create(ctx, alice, plain)
	if err != nil || res.Request.State != grant.StatePending || res.Request.BreakGlass {
		t.Fatalf("plain Create: %+v, %v; want pending, not break-glass", res.Request, err)
	}

	for _, who := range []string{"boss", "aud"} {
		rs, err := e.svc.List(ctx, grant.Caller{User: who}, grant.ListOptions{BreakGlass: true})
		if err != nil || len(rs) != 1 || rs[0].ID != r.ID {
			t.Errorf("break-glass list for %s: %v, %v; want only %s", who, rs, err, r.ID)
		}
	}
}
