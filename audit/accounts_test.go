package audit

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAccountsNeverReuseNames checks the store's promise behind ephemeral
// logins: a login or a UID once recorded on a host is refused again, even
// after the account was removed, while other hosts are independent.
func TestAccountsNeverReuseNames(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		put := func(a Account) error {
			return s.Do(ctx, func(tx *Tx) error { return tx.InsertAccount(a) })
		}
		a := Account{RequestID: "req_1", Host: "db1", Login: "jit-alice-aaaa", User: "alice", Shell: "/bin/bash", Groups: []string{"adm"}, PlannedAt: now}
		if err := put(a); err != nil {
			t.Fatal(err)
		}
		a.UID, a.State, a.CreatedAt = 61000, AccountCreated, now
		if err := s.Do(ctx, func(tx *Tx) error { return tx.UpdateAccount(a) }); err != nil {
			t.Fatal(err)
		}
		a.State, a.RemovedAt = AccountRemoved, now.Add(time.Hour)
		if err := s.Do(ctx, func(tx *Tx) error { return tx.UpdateAccount(a) }); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			a    Account
			want error
		}{
			{"same login, same host, after removal", Account{RequestID: "req_2", Host: "db1", Login: "jit-alice-aaaa", Shell: "/bin/sh", PlannedAt: now}, ErrConflict},
			{"same request", Account{RequestID: "req_1", Host: "db2", Login: "jit-alice-bbbb", Shell: "/bin/sh", PlannedAt: now}, ErrConflict},
			{"same login, other host", Account{RequestID: "req_3", Host: "db2", Login: "jit-alice-aaaa", Shell: "/bin/sh", PlannedAt: now}, nil},
			{"other login", Account{RequestID: "req_4", Host: "db1", Login: "jit-alice-cccc", Shell: "/bin/sh", PlannedAt: now}, nil},
		}
		for _, tt := range tests {
			if err := put(tt.a); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
			}
		}
		// The removed account's UID cannot go to another account of db1.
		b, err := s.Account(ctx, "req_4")
		if err != nil {
			t.Fatal(err)
		}
		b.UID, b.State = 61000, AccountCreated
		if err := s.Do(ctx, func(tx *Tx) error { return tx.UpdateAccount(b) }); !errors.Is(err, ErrConflict) {
			t.Fatalf("UID reuse: got %v, want ErrConflict", err)
		}
		got, err := s.Account(ctx, "req_1")
		if err != nil || got.UID != 61000 || got.State != AccountRemoved || got.Groups[0] != "adm" || !got.RemovedAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("got %+v, %v", got, err)
		}
		counts, err := s.AccountCounts(ctx)
		if err != nil || counts[AccountRemoved] != 1 || counts[AccountPlanned] != 2 {
			t.Fatalf("counts %v, %v", counts, err)
		}
		if list, err := s.Accounts(ctx, AccountPlanned); err != nil || len(list) != 2 {
			t.Fatalf("planned: %v, %v", list, err)
		}
	})
}

func TestHighWaterOnlyGrows(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		for _, hw := range []int{61003, 61001, 61007} {
			if err := s.Do(ctx, func(tx *Tx) error { return tx.RaiseHighWater("db1", hw) }); err != nil {
				t.Fatal(err)
			}
		}
		var got, other int
		if err := s.Do(ctx, func(tx *Tx) error {
			var err error
			if got, err = tx.HighWater("db1"); err != nil {
				return err
			}
			other, err = tx.HighWater("db2")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got != 61007 || other != 0 {
			t.Fatalf("high water %d, other host %d", got, other)
		}
	})
}
