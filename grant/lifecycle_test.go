package grant_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

var (
	alice = grant.Caller{User: "alice", ClientAddr: "127.0.0.1:5000"}
	bob   = grant.Caller{User: "bob", ClientAddr: "127.0.0.1:5001"}
	dan   = grant.Caller{User: "dan"}
)

func TestApproveThenRedeem(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := e.pending(t, "alice", "root")
	if r := e.stored(t, id); r.ExpiresAt != start.Add(30*time.Minute) || r.ApprovalsNeeded != 1 || r.Role != "prod-root" {
		t.Fatalf("pending request %+v, want prod-root needing 1 approval, expiring at %s", r, start.Add(30*time.Minute))
	}
	if _, err := e.svc.Redeem(ctx, alice, id); err != nil {
		wantError(t, err, grant.KindConflict, grant.CodeNotApproved)
	} else {
		t.Fatal("a pending request was redeemed")
	}

	e.clock.Advance(5 * time.Minute)
	res, err := e.svc.Approve(ctx, bob, id, "looks fine")
	if err != nil {
		t.Fatalf("Approve: %v", err)
	}
	approvedAt := start.Add(5 * time.Minute)
	if r := res.Request; r.State != grant.StateApproved || r.DecidedBy != "bob" || r.DecisionReason != "looks fine" ||
		!r.RedeemBy.Equal(approvedAt.Add(10*time.Minute)) || len(res.Approvals) != 1 || res.Certificate != nil {
		t.Fatalf("after approval: %+v", res)
	}
	if _, err := e.svc.Redeem(ctx, bob, id); err != nil {
		wantError(t, err, grant.KindForbidden, grant.CodeNotOwner)
	} else {
		t.Fatal("the approver redeemed the requester's request")
	}

	e.clock.Advance(3 * time.Minute)
	redeemedAt := approvedAt.Add(3 * time.Minute)
	res, err = e.svc.Redeem(ctx, alice, id)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	cert := res.Certificate
	if cert == nil || res.Request.State != grant.StateIssued {
		t.Fatalf("Redeem: state %q, certificate %v", res.Request.State, cert != nil)
	}
	checkCert(t, cert, e.keys.User.PublicKey(), "root@db1", redeemedAt)
	if !slices.Equal(cert.ValidPrincipals, []string{"root@db1"}) || cert.KeyId != "jit:"+id+":alice" ||
		time.Unix(int64(cert.ValidAfter), 0).UTC() != redeemedAt.Add(-time.Minute) ||
		time.Unix(int64(cert.ValidBefore), 0).UTC() != redeemedAt.Add(10*time.Minute) {
		t.Errorf("redeemed certificate: principals %q key id %q valid %d..%d, want root@db1, jit:%s:alice, counted from the redemption",
			cert.ValidPrincipals, cert.KeyId, cert.ValidAfter, cert.ValidBefore, id)
	}
	if r := e.stored(t, id); r.State != grant.StateIssued || r.Serial != cert.Serial {
		t.Errorf("stored request state %q serial %d, want issued with %d", r.State, r.Serial, cert.Serial)
	}

	_, err = e.svc.Redeem(ctx, alice, id)
	wantError(t, err, grant.KindConflict, grant.CodeNotApproved)
	if rows := e.certRows(t, audit.CertificateFilter{RequestID: id}); len(rows) != 1 {
		t.Errorf("%d certificate rows for the request, want 1", len(rows))
	}
	if got, want := e.eventTypes(t, id), []string{"request.created", "request.approved", "cert.issued"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if got, want := e.notes.events(), []string{"request.created", "request.approved"}; !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}
	e.verifyChain(t)
}

func TestTwoOfTwoApprovals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := e.pending(t, "alice", "dba")
	res, err := e.svc.Approve(ctx, bob, id, "")
	if err != nil {
		t.Fatalf("first approval: %v", err)
	}
	if res.Request.State != grant.StatePending || len(res.Approvals) != 1 {
		t.Fatalf("after one of two approvals: state %q with %d approvals, want pending with 1", res.Request.State, len(res.Approvals))
	}
	_, err = e.svc.Approve(ctx, bob, id, "")
	wantError(t, err, grant.KindConflict, grant.CodeAlreadyDecided)
	if r := e.stored(t, id); r.State != grant.StatePending {
		t.Fatalf("the same approver twice made the request %s", r.State)
	}
	if _, err := e.svc.Redeem(ctx, alice, id); err == nil {
		t.Fatal("redeemed with one of two approvals")
	}
	res, err = e.svc.Approve(ctx, dan, id, "second pair of eyes")
	if err != nil {
		t.Fatalf("second approval: %v", err)
	}
	if res.Request.State != grant.StateApproved || len(res.Approvals) != 2 || res.Request.DecidedBy != "dan" {
		t.Fatalf("after two approvals: %+v", res)
	}
	if _, err := e.svc.Redeem(ctx, alice, id); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if got, want := e.eventTypes(t, id), []string{"request.created", "request.approval", "approval.refused", "request.approved", "cert.issued"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestApproveRefused(t *testing.T) {
	tests := []struct {
		name      string
		requester string
		approver  string
		deny      bool
		edits     []string // policy edits made after the request
		wantCode  string
	}{
		{name: "self approval by an approver", requester: "bob", approver: "bob", wantCode: "self_approval"},
		{name: "self denial by an approver", requester: "bob", approver: "bob", deny: true, wantCode: "self_approval"},
		{name: "not an approver", requester: "alice", approver: "carol", wantCode: "not_approver"},
		{name: "unknown approver", requester: "alice", approver: "mallory", wantCode: "unknown_user"},
		{name: "approver removed from the group since the request", requester: "alice", approver: "bob",
			edits: []string{"bob: {groups: [dev, approvers]}", "bob: {groups: [dev]}"}, wantCode: "not_approver"},
		{name: "approver group removed from the role since the request", requester: "alice", approver: "dan",
			edits: []string{"approval: {approvers: [approvers], count: 1}\n    request_ttl", "approval: {approvers: [dba-leads], count: 1}\n    request_ttl"}, wantCode: "not_approver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			id := e.pending(t, tt.requester, "root")
			if tt.edits != nil {
				e.pol.Store(parsePolicy(t, tt.edits...))
			}
			caller := grant.Caller{User: tt.approver}
			var err error
			if tt.deny {
				_, err = e.svc.Deny(ctx, caller, id, "no")
			} else {
				_, err = e.svc.Approve(ctx, caller, id, "yes")
			}
			wantError(t, err, grant.KindForbidden, tt.wantCode)
			r := e.stored(t, id)
			if r.State != grant.StatePending {
				t.Errorf("state %q after a refused decision, want pending", r.State)
			}
			if as, err := e.store.Approvals(ctx, id); err != nil || len(as) != 0 {
				t.Errorf("approvals after a refused decision: %v, %v", as, err)
			}
			evs := e.events(t, audit.EventFilter{RequestID: id, Type: "approval.refused"})
			if len(evs) != 1 || evs[0].Code != tt.wantCode || evs[0].Actor != tt.approver || evs[0].User != tt.requester {
				t.Errorf("approval.refused events %+v, want one by %s with code %s", evs, tt.approver, tt.wantCode)
			}
		})
	}
}

func TestDecideNotPending(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		setup     func(t *testing.T, e *env, id string)
		wantState string
		wantCode  string // default not_pending
	}{
		{name: "denied", wantState: grant.StateDenied, setup: func(t *testing.T, e *env, id string) {
			if _, err := e.svc.Deny(ctx, bob, id, "not during the freeze"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "cancelled", wantState: grant.StateCancelled, setup: func(t *testing.T, e *env, id string) {
			if _, err := e.svc.Cancel(ctx, alice, id); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "approved", wantState: grant.StateApproved, setup: func(t *testing.T, e *env, id string) {
			if _, err := e.svc.Approve(ctx, bob, id, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "issued", wantState: grant.StateIssued, setup: func(t *testing.T, e *env, id string) {
			if _, err := e.svc.Approve(ctx, bob, id, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Redeem(ctx, alice, id); err != nil {
				t.Fatal(err)
			}
		}},
		// Expired answers the same whether or not the sweeper ran first.
		{name: "expired by the sweeper", wantState: grant.StateExpired, wantCode: grant.CodeRequestExpired, setup: func(t *testing.T, e *env, id string) {
			e.clock.Advance(31 * time.Minute)
			if n, err := e.svc.ExpireDue(ctx); err != nil || n != 1 {
				t.Fatalf("ExpireDue: %d, %v", n, err)
			}
		}},
	}
	for _, tt := range tests {
		for _, verdict := range []string{"approve", "deny"} {
			t.Run(tt.name+"/"+verdict, func(t *testing.T) {
				e := newEnv(t)
				id := e.pending(t, "alice", "root")
				tt.setup(t, e, id)
				var err error
				if verdict == "deny" {
					_, err = e.svc.Deny(ctx, dan, id, "too late")
				} else {
					_, err = e.svc.Approve(ctx, dan, id, "too late")
				}
				code := tt.wantCode
				if code == "" {
					code = grant.CodeNotPending
				}
				wantError(t, err, grant.KindConflict, code)
				if r := e.stored(t, id); r.State != tt.wantState {
					t.Errorf("state %q, want it left %q", r.State, tt.wantState)
				}
				evs := e.events(t, audit.EventFilter{RequestID: id, Type: "approval.refused"})
				if len(evs) != 1 || evs[0].Actor != "dan" || evs[0].Code != code || evs[0].Data["verdict"] != verdict {
					t.Errorf("approval.refused events %+v, want one by dan", evs)
				}
			})
		}
	}
}

func TestDecideExpired(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		advance time.Duration
		deny    bool
	}{
		{name: "approve at the deadline", advance: 30 * time.Minute},
		{name: "approve after the deadline", advance: 2 * time.Hour},
		{name: "deny after the deadline", advance: 31 * time.Minute, deny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.pending(t, "alice", "root")
			e.clock.Advance(tt.advance)
			var err error
			if tt.deny {
				_, err = e.svc.Deny(ctx, bob, id, "no")
			} else {
				_, err = e.svc.Approve(ctx, bob, id, "yes")
			}
			wantError(t, err, grant.KindConflict, grant.CodeRequestExpired)
			if r := e.stored(t, id); r.State != grant.StateExpired || !r.DecidedAt.Equal(start.Add(tt.advance)) {
				t.Errorf("stored state %q decided at %s, want expired at %s", r.State, r.DecidedAt, start.Add(tt.advance))
			}
			if got, want := e.eventTypes(t, id), []string{"request.created", "request.expired", "approval.refused"}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
			if got, want := e.notes.events(), []string{"request.created", "request.expired"}; !slices.Equal(got, want) {
				t.Errorf("notifications %q, want %q", got, want)
			}
			if _, err := e.svc.Approve(ctx, dan, id, "yes"); err == nil {
				t.Error("an expired request was approved on a second try")
			}
		})
	}
}

// One minute before the deadline the request is still open.
func TestApproveJustBeforeDeadline(t *testing.T) {
	e := newEnv(t)
	id := e.pending(t, "alice", "root")
	e.clock.Advance(30*time.Minute - time.Second)
	if _, err := e.svc.Approve(context.Background(), bob, id, ""); err != nil {
		t.Fatalf("Approve a second before the deadline: %v", err)
	}
}

func TestDeny(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		reason   string
		wantKind grant.Kind
	}{
		{name: "with a reason", reason: "not during the freeze"},
		{name: "without a reason", reason: "", wantKind: grant.KindInvalid},
		{name: "blank reason", reason: " \u00a0 ", wantKind: grant.KindInvalid},
		{name: "reason with a newline", reason: "no\nrequest.approved by bob", wantKind: grant.KindInvalid},
		{name: "reason too long", reason: strings.Repeat("n", 1001), wantKind: grant.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.pending(t, "alice", "root")
			res, err := e.svc.Deny(ctx, bob, id, tt.reason)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, grant.CodeInvalidRequest)
				if r := e.stored(t, id); r.State != grant.StatePending {
					t.Errorf("state %q after an invalid deny, want pending", r.State)
				}
				return
			}
			if err != nil {
				t.Fatalf("Deny: %v", err)
			}
			if r := res.Request; r.State != grant.StateDenied || r.DecidedBy != "bob" || r.DecisionReason != tt.reason {
				t.Errorf("denied request %+v", r)
			}
			if _, err := e.svc.Redeem(ctx, alice, id); err == nil {
				t.Error("a denied request was redeemed")
			}
			if rows := e.certRows(t, audit.CertificateFilter{}); len(rows) != 0 {
				t.Errorf("%d certificate rows after a denial", len(rows))
			}
			notes := e.notes.all()
			if len(notes) != 2 || notes[1].Event != "request.denied" || notes[1].Actor != "bob" || notes[1].Reason != tt.reason {
				t.Errorf("notifications %+v, want created then denied by bob with the reason", notes)
			}
			evs := e.events(t, audit.EventFilter{RequestID: id, Type: "request.denied"})
			if len(evs) != 1 || evs[0].Actor != "bob" || evs[0].Message != tt.reason {
				t.Errorf("request.denied events %+v", evs)
			}
		})
	}
}

func TestDecideUnknownRequest(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.Approve(context.Background(), bob, "req_nosuch", "")
	wantError(t, err, grant.KindNotFound, grant.CodeNotFound)
	_, err = e.svc.Deny(context.Background(), bob, "req_nosuch", "no")
	wantError(t, err, grant.KindNotFound, grant.CodeNotFound)
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		caller    grant.Caller
		setup     func(t *testing.T, e *env, id string)
		wantKind  grant.Kind
		wantCode  string
		wantState string
	}{
		{name: "requester cancels a pending request", caller: alice, wantState: grant.StateCancelled},
		{name: "requester cancels an approved request", caller: alice, wantState: grant.StateCancelled,
			setup: func(t *testing.T, e *env, id string) {
				if _, err := e.svc.Approve(ctx, bob, id, ""); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "an approver may not cancel", caller: bob, wantKind: grant.KindForbidden, wantCode: grant.CodeNotOwner, wantState: grant.StatePending},
		{name: "an admin may not cancel", caller: grant.Caller{User: "boss"}, wantKind: grant.KindForbidden, wantCode: grant.CodeNotOwner, wantState: grant.StatePending},
		{name: "issued cannot be cancelled", caller: alice, wantKind: grant.KindConflict, wantCode: grant.CodeNotPending, wantState: grant.StateIssued,
			setup: func(t *testing.T, e *env, id string) {
				if _, err := e.svc.Approve(ctx, bob, id, ""); err != nil {
					t.Fatal(err)
				}
				if _, err := e.svc.Redeem(ctx, alice, id); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "cancelled cannot be cancelled again", caller: alice, wantKind: grant.KindConflict, wantCode: grant.CodeNotPending, wantState: grant.StateCancelled,
			setup: func(t *testing.T, e *env, id string) {
				if _, err := e.svc.Cancel(ctx, alice, id); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "past its deadline it is expired, not cancelled", caller: alice, wantKind: grant.KindConflict, wantCode: grant.CodeRequestExpired, wantState: grant.StateExpired,
			setup: func(t *testing.T, e *env, id string) { e.clock.Advance(30 * time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.pending(t, "alice", "root")
			if tt.setup != nil {
				tt.setup(t, e, id)
			}
			res, err := e.svc.Cancel(ctx, tt.caller, id)
			if tt.wantKind != 0 {
				wantError(t, err, tt.wantKind, tt.wantCode)
			} else {
				if err != nil {
					t.Fatalf("Cancel: %v", err)
				}
				if res.Request.State != grant.StateCancelled || res.Request.DecidedBy != "alice" {
					t.Errorf("cancelled request %+v", res.Request)
				}
				if notes := e.notes.events(); notes[len(notes)-1] != "request.cancelled" {
					t.Errorf("notifications %q, want request.cancelled last", notes)
				}
				if _, err := e.svc.Redeem(ctx, alice, id); err == nil {
					t.Error("a cancelled request was redeemed")
				}
			}
			if r := e.stored(t, id); r.State != tt.wantState {
				t.Errorf("state %q, want %q", r.State, tt.wantState)
			}
		})
	}
	t.Run("unknown request", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.svc.Cancel(ctx, alice, "req_nosuch")
		wantError(t, err, grant.KindNotFound, grant.CodeNotFound)
	})
}
