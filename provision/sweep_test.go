package provision

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/internal/testkit"
)

// These tests check the scheduling logic (when to create, when to remove,
// backoff, restarts) at the Runner seam only; the real helper over real
// SSH runs in e2e (TestEphemeralAccount*).

var t0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

// fakeHost answers like the helper's record would: UIDs above the
// high-water mark, never reused; down refuses to answer at all;
// stillRunning answers that many removals with still_running.
type fakeHost struct {
	mu           sync.Mutex
	accounts     map[string]api.AccountInfo
	hw           int
	down         bool
	stillRunning int
	taken        map[string]bool // logins that exist and are not ours
	calls        []string
}

func newFakeHost() *fakeHost {
	return &fakeHost{accounts: map[string]api.AccountInfo{}, taken: map[string]bool{}}
}

func (h *fakeHost) Run(_ context.Context, host, _, op string, req api.AccountRequest) (api.AccountAnswer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, op+" "+req.Login)
	if h.down {
		return api.AccountAnswer{}, fmt.Errorf("dial %s: connection refused", host)
	}
	switch op {
	case api.AccountOpCreate:
		if h.taken[req.Login] {
			return api.AccountAnswer{Code: api.AccountCodeNameExists, Error: "user exists", HighWater: h.hw}, nil
		}
		if a, ok := h.accounts[req.Login]; ok && a.Grant == req.Grant {
			return api.AccountAnswer{OK: true, Accounts: []api.AccountInfo{a}, HighWater: h.hw}, nil
		}
		uid := max(req.UIDMin, h.hw+1)
		h.hw = uid
		a := api.AccountInfo{Login: req.Login, UID: uid, Grant: req.Grant}
		h.accounts[req.Login] = a
		return api.AccountAnswer{OK: true, Accounts: []api.AccountInfo{a}, HighWater: h.hw}, nil
	case api.AccountOpRemove:
		if h.stillRunning > 0 {
			h.stillRunning--
			return api.AccountAnswer{Code: api.AccountCodeStillRunning, Error: "1 process survived", HighWater: h.hw}, nil
		}
		if a, ok := h.accounts[req.Login]; ok && a.UID != req.UID {
			return api.AccountAnswer{Code: api.AccountCodeNotManaged, HighWater: h.hw}, nil
		}
		delete(h.accounts, req.Login)
		return api.AccountAnswer{OK: true, HighWater: h.hw}, nil
	case api.AccountOpList:
		var out []api.AccountInfo
		for _, a := range h.accounts {
			out = append(out, a)
		}
		return api.AccountAnswer{OK: true, Accounts: out, HighWater: h.hw}, nil
	}
	return api.AccountAnswer{Code: api.AccountCodeBadRequest}, nil
}

func (h *fakeHost) ops() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

type env struct {
	store *audit.Store
	clock *testkit.Clock
	host  *fakeHost
	acc   *Accounts
	live  map[string]bool
	mu    sync.Mutex
	path  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{clock: testkit.NewClock(t0), host: newFakeHost(), live: map[string]bool{}, path: filepath.Join(t.TempDir(), "jitssh.db")}
	e.open(t)
	return e
}

// open opens the store and a fresh Accounts on it: what a jitd restart does.
func (e *env) open(t *testing.T) {
	t.Helper()
	s, err := audit.Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.store = s
	e.acc, err = New(Config{Store: s, Runner: e.host, Clock: e.clock.Now, Live: func(id string) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.live[id]
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// grant records an issued ephemeral request valid for ttl from now, with
// its certificate and planned account; it returns the request id.
func (e *env) grant(t *testing.T, n int, ttl time.Duration) string {
	t.Helper()
	id, now := fmt.Sprintf("req_%d", n), e.clock.Now()
	serial := uint64(1000 + n)
	err := e.store.Do(context.Background(), func(tx *audit.Tx) error {
		if err := tx.InsertRequest(audit.Request{ID: id, User: "alice", Host: "db1", Login: fmt.Sprintf("jit-alice-%04d", n), Role: "r",
			State: api.StateIssued, TTL: ttl, CreatedAt: now, Serial: serial}); err != nil {
			return err
		}
		if err := tx.InsertCertificate(audit.Certificate{Serial: serial, Kind: "user", RequestID: id, User: "alice", Host: "db1",
			Principals: []string{fmt.Sprintf("jit-alice-%04d@db1", n)}, ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(ttl), IssuedAt: now}); err != nil {
			return err
		}
		return tx.InsertAccount(audit.Account{RequestID: id, Host: "db1", Login: fmt.Sprintf("jit-alice-%04d", n), User: "alice",
			Groups: []string{"adm"}, Shell: "/bin/bash", PlannedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) account(t *testing.T, id string) audit.Account {
	t.Helper()
	a, err := e.store.Account(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) events(t *testing.T, typ string) []audit.Event {
	t.Helper()
	evs, err := e.store.Events(context.Background(), audit.EventFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (e *env) sweep(t *testing.T) int {
	t.Helper()
	n, err := e.acc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPrepareCreatesOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.acc.Prepare(ctx, "req_not_ephemeral", "db1", "jit-x"); err != nil || len(e.host.ops()) != 0 {
		t.Fatalf("non-ephemeral request: %v, calls %v", err, e.host.ops())
	}
	id := e.grant(t, 1, 10*time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- e.acc.Prepare(ctx, id, "db1", e.account(t, id).Login) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ops := e.host.ops(); len(ops) != 1 || ops[0] != "create jit-alice-0001" {
		t.Fatalf("8 concurrent first sessions made calls %v, want one create", ops)
	}
	a := e.account(t, id)
	if a.State != audit.AccountCreated || a.UID != DefaultUIDMin || !a.CreateSent {
		t.Fatalf("account %+v", a)
	}
	if evs := e.events(t, EventCreated); len(evs) != 1 || evs[0].Data["uid"] != "61000" || evs[0].Login != a.Login || evs[0].RequestID != id {
		t.Fatalf("account.created events %+v", evs)
	}
	// A second grant of the same user on the host gets its own account,
	// above the mirrored high-water mark.
	id2 := e.grant(t, 2, 10*time.Minute)
	if err := e.acc.Prepare(ctx, id2, "db1", e.account(t, id2).Login); err != nil {
		t.Fatal(err)
	}
	if a2 := e.account(t, id2); a2.UID != DefaultUIDMin+1 || a2.Login == a.Login {
		t.Fatalf("second account %+v", a2)
	}
}

func TestPrepareFailureRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.grant(t, 1, 10*time.Minute)
	e.host.taken["jit-alice-0001"] = true
	err := e.acc.Prepare(ctx, id, "db1", e.account(t, id).Login)
	var perr *PrepareError
	if !errors.As(err, &perr) || perr.Code != api.AccountCodeNameExists {
		t.Fatalf("got %v, want a name_exists refusal", err)
	}
	if a := e.account(t, id); a.State != audit.AccountFailed || a.Attempts != 1 {
		t.Fatalf("account %+v", a)
	}
	if evs := e.events(t, EventCreateFailed); len(evs) != 1 || evs[0].Code != api.AccountCodeNameExists {
		t.Fatalf("events %+v", evs)
	}
	// At expiry the failed account is cleaned up without touching the
	// foreign user: the helper lists only its own.
	e.clock.Advance(11 * time.Minute)
	if n := e.sweep(t); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if ops := e.host.ops(); ops[len(ops)-1] != "list " {
		t.Fatalf("calls %v, want a list and no remove", ops)
	}
	if evs := e.events(t, EventRemoved); len(evs) != 1 || evs[0].Code != CodeNeverCreated {
		t.Fatalf("events %+v", evs)
	}
}

func TestSweepWaitsForExpiryAndSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.grant(t, 1, 10*time.Minute)
	if err := e.acc.Prepare(ctx, id, "db1", e.account(t, id).Login); err != nil {
		t.Fatal(err)
	}
	if n := e.sweep(t); n != 0 {
		t.Fatalf("removed %d before expiry", n)
	}
	e.clock.Advance(10 * time.Minute)
	e.live[id] = true
	if n := e.sweep(t); n != 0 || e.account(t, id).State != audit.AccountCreated {
		t.Fatal("removed while a session is live")
	}
	e.live[id] = false
	if n := e.sweep(t); n != 1 {
		t.Fatalf("removed %d after expiry", n)
	}
	if a := e.account(t, id); a.State != audit.AccountRemoved || !a.RemovedAt.Equal(e.clock.Now()) || a.UID != DefaultUIDMin {
		t.Fatalf("account %+v", a)
	}
	if err := e.acc.Prepare(ctx, id, "db1", e.account(t, id).Login); err == nil {
		t.Fatal("a removed grant's account was prepared again")
	}
	// An account no session ever asked for goes without a call.
	calls := len(e.host.ops())
	id2 := e.grant(t, 2, time.Minute)
	e.clock.Advance(2 * time.Minute)
	if n := e.sweep(t); n != 1 || len(e.host.ops()) != calls {
		t.Fatalf("removed %d, calls %v", n, e.host.ops()[calls:])
	}
	if a := e.account(t, id2); a.State != audit.AccountRemoved {
		t.Fatalf("never created account %+v", a)
	}
}

func TestSweepRevoked(t *testing.T) {
	e := newEnv(t)
	id := e.grant(t, 1, time.Hour)
	if err := e.acc.Prepare(context.Background(), id, "db1", e.account(t, id).Login); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.RevokeCertificate(1001, e.clock.Now(), "test") }); err != nil {
		t.Fatal(err)
	}
	if n := e.sweep(t); n != 1 {
		t.Fatalf("revoked grant: removed %d", n)
	}
}

// TestSweepBackoffSurvivesRestart: an unreachable host and one answering
// still_running are retried at 30s, 60s, 120s..., never dropped, with
// every failure recorded; the queue is the store, so a new Accounts on it
// (a restart) carries on where the old one stopped.
func TestSweepBackoffSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	id := e.grant(t, 1, 10*time.Minute)
	if err := e.acc.Prepare(context.Background(), id, "db1", e.account(t, id).Login); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)
	e.host.down = true
	wantWait := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute}
	for i, wait := range wantWait {
		if n := e.sweep(t); n != 0 {
			t.Fatalf("removed while down")
		}
		a := e.account(t, id)
		if a.State != audit.AccountRemoving || a.Attempts != i+1 || !a.NextAttempt.Equal(e.clock.Now().Add(wait)) {
			t.Fatalf("attempt %d: %+v, want next in %s", i+1, a, wait)
		}
		calls := len(e.host.ops())
		e.clock.Advance(wait - time.Second)
		e.sweep(t)
		if len(e.host.ops()) != calls {
			t.Fatalf("retried before the backoff of %s", wait)
		}
		e.clock.Advance(time.Second)
		if i == 1 {
			e.open(t) // restart
		}
	}
	e.host.down, e.host.stillRunning = false, 1
	if n := e.sweep(t); n != 0 {
		t.Fatal("removed while processes run")
	}
	if a := e.account(t, id); a.Attempts != 4 || a.LastError == "" {
		t.Fatalf("after still_running: %+v", a)
	}
	e.clock.Advance(4 * time.Minute)
	if n := e.sweep(t); n != 1 {
		t.Fatal("not removed once the host answers")
	}
	if evs := e.events(t, EventRemoveFailed); len(evs) != 4 || evs[0].Code != CodeUnreachable || evs[3].Code != api.AccountCodeStillRunning {
		t.Fatalf("remove_failed events %+v", evs)
	}
}

// TestSweepAfterLostAnswer: jitd sent a create and died before recording
// the answer; the sweep asks the host for the UID and removes it.
func TestSweepAfterLostAnswer(t *testing.T) {
	e := newEnv(t)
	id := e.grant(t, 1, time.Minute)
	a := e.account(t, id)
	a.CreateSent = true
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.UpdateAccount(a) }); err != nil {
		t.Fatal(err)
	}
	e.host.accounts[a.Login] = api.AccountInfo{Login: a.Login, UID: 61005, Grant: id}
	e.clock.Advance(time.Minute)
	if n := e.sweep(t); n != 1 {
		t.Fatalf("removed %d", n)
	}
	if ops := e.host.ops(); len(ops) != 2 || ops[0] != "list " || ops[1] != "remove "+a.Login {
		t.Fatalf("calls %v", ops)
	}
	if _, left := e.host.accounts[a.Login]; left {
		t.Fatal("account left on the host")
	}
}

func TestBackoffAndRange(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 7: 30 * time.Minute, 50: 30 * time.Minute} {
		if got := Backoff(n); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, want)
		}
	}
	for _, tt := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{{"61000-64999", 61000, 64999, true}, {"2000-2000", 2000, 2000, true}, {"999-2000", 0, 0, false}, {"5000-4000", 0, 0, false}, {"61000", 0, 0, false}, {"a-b", 0, 0, false}} {
		lo, hi, err := ParseUIDRange(tt.in)
		if (err == nil) != tt.ok || lo != tt.lo || hi != tt.hi {
			t.Errorf("ParseUIDRange(%q) = %d, %d, %v", tt.in, lo, hi, err)
		}
	}
}
