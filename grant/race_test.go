package grant_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// Many approvers clicking at once leave exactly one terminal state, and many
// redemptions at once yield exactly one certificate. Run with -race.
func TestConcurrentApproveAndRedeem(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := e.pending(t, "alice", "root")

	type outcome struct {
		res grant.Result
		err error
	}
	run := func(n int, call func(i int) (grant.Result, error)) []outcome {
		out := make([]outcome, n)
		var wg sync.WaitGroup
		ready := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-ready
				res, err := call(i)
				out[i] = outcome{res: res, err: err}
			})
		}
		close(ready)
		wg.Wait()
		return out
	}

	approvals := run(raceApprovers, func(i int) (grant.Result, error) {
		return e.svc.Approve(ctx, grant.Caller{User: fmt.Sprintf("approver%03d", i)}, id, "on call")
	})
	approvedBy := ""
	for i, o := range approvals {
		switch {
		case o.err == nil:
			if approvedBy != "" {
				t.Fatalf("approver%03d and %s both approved", i, approvedBy)
			}
			if o.res.Request.State != grant.StateApproved {
				t.Fatalf("approver%03d: state %q, want approved", i, o.res.Request.State)
			}
			approvedBy = o.res.Request.DecidedBy
		case grant.KindOf(o.err) != grant.KindConflict:
			t.Errorf("approver%03d: %v, want a conflict", i, o.err)
		}
	}
	if approvedBy == "" {
		t.Fatal("no approval succeeded")
	}
	if as, err := e.store.Approvals(ctx, id); err != nil || len(as) != 1 || as[0].Approver != approvedBy {
		t.Fatalf("stored approvals %+v, %v; want only %s's", as, err, approvedBy)
	}
	if evs := e.events(t, audit.EventFilter{RequestID: id, Type: "request.approved"}); len(evs) != 1 {
		t.Errorf("%d request.approved events, want 1", len(evs))
	}
	if evs := e.events(t, audit.EventFilter{RequestID: id, Type: "approval.refused"}); len(evs) != raceApprovers-1 {
		t.Errorf("%d approval.refused events, want %d", len(evs), raceApprovers-1)
	}

	redemptions := run(raceApprovers, func(int) (grant.Result, error) {
		return e.svc.Redeem(ctx, alice, id)
	})
	var cert *ssh.Certificate
	for i, o := range redemptions {
		switch {
		case o.err == nil:
			if cert != nil || o.res.Certificate == nil {
				t.Fatalf("redemption %d: a second certificate (or none with success)", i)
			}
			cert = o.res.Certificate
		case grant.KindOf(o.err) != grant.KindConflict:
			t.Errorf("redemption %d: %v, want a conflict", i, o.err)
		}
	}
	if cert == nil {
		t.Fatal("no redemption succeeded")
	}
	rows := e.certRows(t, audit.CertificateFilter{})
	if len(rows) != 1 || rows[0].Serial != cert.Serial {
		t.Fatalf("%d certificate rows, want exactly the one for serial %d", len(rows), cert.Serial)
	}
	if evs := e.events(t, audit.EventFilter{Type: "cert.issued"}); len(evs) != 1 {
		t.Errorf("%d cert.issued events, want 1", len(evs))
	}
	if r := e.stored(t, id); r.State != grant.StateIssued || r.Serial != cert.Serial {
		t.Errorf("stored request %s with serial %d, want issued with %d", r.State, r.Serial, cert.Serial)
	}
	e.verifyChain(t)
}
