package grant_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// A retry with the same Idempotency-Key is answered with the first request
// and its certificate, never a second request or a second cert.issued; a
// different body with the key is refused; after the window the key is new.
func TestIdempotencyKeyReplaysFirstOutcome(t *testing.T) {
	ctx := context.Background()
	alice := grant.Caller{User: "alice"}
	tests := []struct {
		name      string
		host      string
		login     string
		wantState string
	}{
		{name: "issued at once", host: "web1", login: "deploy", wantState: grant.StateIssued},
		{name: "pending", host: "db1", login: "root", wantState: grant.StatePending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			req := e.request(tc.host, tc.login, "deploy release 42")
			req.IdempotencyKey = "key-1"
			first, err := e.svc.Create(ctx, alice, req)
			if err != nil {
				t.Fatalf("first create: %v", err)
			}
			again, err := e.svc.Create(ctx, alice, req)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if again.Request.ID != first.Request.ID || again.Request.State != tc.wantState {
				t.Fatalf("retry answered %s (%s), want %s (%s)", again.Request.ID, again.Request.State, first.Request.ID, tc.wantState)
			}
			if (first.Certificate == nil) != (again.Certificate == nil) ||
				first.Certificate != nil && !bytes.Equal(first.Certificate.Marshal(), again.Certificate.Marshal()) {
				t.Fatalf("retry's certificate differs from the first")
			}
			if n := len(e.events(t, audit.EventFilter{Type: "cert.issued"})); n > 1 {
				t.Fatalf("%d cert.issued events, want at most 1", n)
			}
			if n := len(e.events(t, audit.EventFilter{Type: "request.created"})); n != 1 {
				t.Fatalf("%d request.created events, want 1", n)
			}

			other := req
			other.Justification = "something else entirely"
			_, err = e.svc.Create(ctx, alice, other)
			wantError(t, err, grant.KindConflict, grant.CodeIdempotencyKeyReused)

			// Another user's key of the same name is theirs alone.
			carol, err := e.svc.Create(ctx, grant.Caller{User: "carol"}, req)
			if err != nil || carol.Request.ID == first.Request.ID {
				t.Fatalf("carol with alice's key: %v, id %s", err, carol.Request.ID)
			}

			e.clock.Advance(grant.IdempotencyWindow + 1)
			if n, err := e.svc.ReapIdempotencyKeys(ctx); err != nil || n != 2 {
				t.Fatalf("reap: %d, %v; want 2 keys", n, err)
			}
			later, err := e.svc.Create(ctx, alice, req)
			if err != nil || later.Request.ID == first.Request.ID {
				t.Fatalf("after the window: %v, id %s; want a new request", err, later.Request.ID)
			}
		})
	}
}

// Concurrent requests with one key make exactly one request: the others
// replay it or are told it is still in flight.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	req := e.request("web1", "deploy", "deploy release 42")
	req.IdempotencyKey = "same-key"
	const n = 16
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-ready
			res, err := e.svc.Create(ctx, grant.Caller{User: "alice"}, req)
			ids[i], errs[i] = res.Request.ID, err
		})
	}
	close(ready)
	wg.Wait()
	made := map[string]bool{}
	for i, err := range errs {
		switch {
		case err == nil:
			made[ids[i]] = true
		case grant.KindOf(err) == grant.KindConflict && strings.Contains(err.Error(), grant.CodeIdempotencyKeyInFlight):
		default:
			t.Errorf("create %d: %v", i, err)
		}
	}
	if len(made) != 1 {
		t.Fatalf("requests made: %v, want exactly one", made)
	}
	if got := len(e.events(t, audit.EventFilter{Type: "cert.issued"})); got != 1 {
		t.Fatalf("%d cert.issued events, want 1", got)
	}
}

// A key that is empty, too long or holds control bytes is refused.
func TestIdempotencyKeyInvalid(t *testing.T) {
	for _, key := range []string{"\x00", strings.Repeat("k", grant.MaxIdempotencyKeyLen+1), "a\x1bb", "é"} {
		e := newEnv(t)
		req := e.request("web1", "deploy", "deploy release 42")
		req.IdempotencyKey = key
		_, err := e.svc.Create(context.Background(), grant.Caller{User: "alice"}, req)
		wantError(t, err, grant.KindInvalid, grant.CodeInvalidIdempotencyKey)
	}
}
