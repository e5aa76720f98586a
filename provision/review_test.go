package provision

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// TestPrepareFailureIsFinal: a create the helper refused is not sent
// again at the grant's next session (each try could use a UID on the
// target); an unreachable target is tried again.
func TestPrepareFailureIsFinal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.grant(t, 1, 10*time.Minute)
	login := e.account(t, id).Login
	e.host.taken[login] = true
	for range 3 {
		var perr *PrepareError
		if err := e.acc.Prepare(ctx, id, "db1", login); !errors.As(err, &perr) || perr.Code != api.AccountCodeNameExists {
			t.Fatalf("got %v, want a name_exists refusal", err)
		}
	}
	if ops := e.host.ops(); len(ops) != 1 {
		t.Fatalf("calls %v, want one create", ops)
	}
	id2 := e.grant(t, 2, 10*time.Minute)
	login2 := e.account(t, id2).Login
	e.host.down = true
	var perr *PrepareError
	if err := e.acc.Prepare(ctx, id2, "db1", login2); !errors.As(err, &perr) || perr.Code != CodeUnreachable {
		t.Fatalf("got %v, want unreachable", err)
	}
	e.host.down = false
	if err := e.acc.Prepare(ctx, id2, "db1", login2); err != nil {
		t.Fatalf("retry after the host came back: %v", err)
	}
}

// TestPrepareAfterLostAnswer: a create's answer was lost (row UID 0,
// create sent) and another grant raised the mirror since; the next
// session finds the account with list instead of failing bad_answer.
func TestPrepareAfterLostAnswer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.grant(t, 1, 10*time.Minute)
	a := e.account(t, id)
	a.CreateSent, a.State = true, audit.AccountFailed
	a.LastError = CodeUnreachable + ": read: connection reset"
	if err := e.store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.UpdateAccount(a); err != nil {
			return err
		}
		return tx.RaiseHighWater("db1", 61010)
	}); err != nil {
		t.Fatal(err)
	}
	e.host.accounts[a.Login] = api.AccountInfo{Login: a.Login, UID: 61005, Grant: id}
	if err := e.acc.Prepare(ctx, id, "db1", a.Login); err != nil {
		t.Fatal(err)
	}
	if got := e.account(t, id); got.UID != 61005 || got.State != audit.AccountCreated {
		t.Fatalf("account %+v, want uid 61005 created", got)
	}
	if ops := e.host.ops(); !slices.Equal(ops, []string{"list "}) {
		t.Fatalf("calls %v, want one list", ops)
	}
	if evs := e.events(t, EventCreated); len(evs) != 1 {
		t.Fatalf("account.created events %+v", evs)
	}
}
