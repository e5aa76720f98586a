package grant_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
)

// ephemeralRole is an ephemeral role on db1 for dev, prepended so that
// file order does not matter for it.
const ephemeralRole = `roles:
  - name: prod-ephemeral
    groups: [dev]
    hosts: {names: [db1]}
    account: ephemeral
    account_groups: [adm]
    sudo: [/usr/bin/id]
    ttl: 5m
`

func TestCreateEphemeral(t *testing.T) {
	e := newEnv(t)
	e.pol.Store(parsePolicy(t, "roles:\n", ephemeralRole))
	ctx := context.Background()
	caller := grant.Caller{User: "alice", ClientAddr: "127.0.0.1:5000"}
	res, err := e.svc.Create(ctx, caller, e.request("db1", "", "fix the index"))
	if err != nil {
		t.Fatal(err)
	}
	login := res.Request.Login
	if err := policy.ValidEphemeralLogin(login); err != nil || !strings.HasPrefix(login, "jit-alice-") {
		t.Fatalf("login %q: %v", login, err)
	}
	if got := res.Certificate.ValidPrincipals; len(got) != 1 || got[0] != login+"@db1" {
		t.Fatalf("principals %q, want %s@db1", got, login)
	}
	a, err := e.store.Account(ctx, res.Request.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != audit.AccountPlanned || a.Login != login || a.Host != "db1" || a.User != "alice" || a.Groups[0] != "adm" || a.Sudo[0] != "/usr/bin/id" || a.Shell != policy.DefaultShell {
		t.Fatalf("account %+v", a)
	}

	// A role change between two grants: the next request records the
	// groups in force when it is made; the first keeps its own.
	e.pol.Store(parsePolicy(t, "roles:\n", strings.Replace(ephemeralRole, "[adm]", "[adm, staff]", 1)))
	res2, err := e.svc.Create(ctx, caller, e.request("db1", "", "fix the index again"))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Request.Login == login {
		t.Fatalf("two grants share login %s", login)
	}
	a2, err := e.store.Account(ctx, res2.Request.ID)
	if err != nil || strings.Join(a2.Groups, ",") != "adm,staff" {
		t.Fatalf("second account %+v, %v", a2, err)
	}
	if a, _ := e.store.Account(ctx, res.Request.ID); strings.Join(a.Groups, ",") != "adm" {
		t.Fatalf("first account changed: %+v", a)
	}
	// A named login on the ephemeral-only host role is still a fixed one.
	if res, err := e.svc.Create(ctx, caller, e.request("db1", "reader", "read")); err != nil || res.Request.Login != "reader" {
		t.Fatalf("fixed login: %+v, %v", res.Request, err)
	}
	if _, err := e.store.Account(ctx, "nope"); err == nil {
		t.Fatal("account of an unknown request")
	}
}

func TestCreateEphemeralRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	caller := grant.Caller{User: "alice"}
	// No ephemeral role: an empty login is refused by policy, audited.
	_, err := e.svc.Create(ctx, caller, e.request("db1", "", "fix"))
	if grant.KindOf(err) != grant.KindDenied || !strings.Contains(err.Error(), "ephemeral account") {
		t.Fatalf("got %v", err)
	}
	// Asking for a login of the ephemeral form by name is refused.
	if _, err := e.svc.Create(ctx, caller, e.request("db1", "jit-alice-abcd", "fix")); grant.KindOf(err) != grant.KindInvalid {
		t.Fatalf("named ephemeral login: %v", err)
	}
	if _, err := e.svc.Create(ctx, caller, e.request("db1", policy.ProvisionLogin, "fix")); grant.KindOf(err) != grant.KindInvalid {
		t.Fatalf("provisioning login: %v", err)
	}
	if events := e.events(t, audit.EventFilter{Type: "request.denied"}); len(events) != 3 {
		t.Fatalf("denials %d, want 3", len(events))
	}
}

// TestEphemeralLoginCollision: names handed out before on the host (even
// long removed) are skipped; when every attempt is taken, the request is
// refused with account_name_taken and the refusal is audited.
func TestEphemeralLoginCollision(t *testing.T) {
	fixed := bytes.Repeat([]byte{7}, 10)
	e := newEnv(t, func(c *grant.Config) { c.Rand = io.MultiReader(bytes.NewReader(fixed), rand.Reader) })
	e.pol.Store(parsePolicy(t, "roles:\n", ephemeralRole))
	ctx := context.Background()
	// The id Create will draw: the clock's milliseconds, then fixed.
	var b [16]byte
	ms := start.UnixMilli()
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	copy(b[6:], fixed)
	id := "req_" + strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
	take := func(n int) {
		for attempt := range n {
			login := policy.EphemeralLogin("alice", id, attempt)
			if err := e.store.Do(ctx, func(tx *audit.Tx) error {
				return tx.InsertAccount(audit.Account{RequestID: fmt.Sprintf("old_%d", attempt), Host: "db1", Login: login, Shell: "/bin/sh", State: audit.AccountRemoved, PlannedAt: start})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	take(3)
	res, err := e.svc.Create(ctx, grant.Caller{User: "alice"}, e.request("db1", "", "fix"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Request.ID != id || res.Request.Login != policy.EphemeralLogin("alice", id, 3) {
		t.Fatalf("request %s login %s, want %s and attempt 3's name", res.Request.ID, res.Request.Login, id)
	}

	e2 := newEnv(t, func(c *grant.Config) { c.Rand = io.MultiReader(bytes.NewReader(fixed), rand.Reader) })
	e2.pol.Store(parsePolicy(t, "roles:\n", ephemeralRole))
	e = e2
	take(8)
	_, err = e.svc.Create(ctx, grant.Caller{User: "alice"}, e.request("db1", "", "fix"))
	var ge *grant.Error
	if !errors.As(err, &ge) || ge.Code != grant.CodeAccountNameTaken {
		t.Fatalf("got %v, want %s", err, grant.CodeAccountNameTaken)
	}
	if evs := e.events(t, audit.EventFilter{Type: "request.denied"}); len(evs) != 1 || evs[0].Code != grant.CodeAccountNameTaken {
		t.Fatalf("denials %+v", evs)
	}
}
