package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// Approving a request: the state check, the update and the audit event are
// one atomic step, so concurrent approvers cannot both win, and the caller
// learns the outcome only once it is on disk.
func ExampleStore_Do() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := audit.Open(filepath.Join(dir, "jitssh.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	err = s.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertRequest(audit.Request{ID: "r1", User: "alice", Host: "db1", Login: "root",
			State: audit.StatePending, CreatedAt: now})
	})
	if err != nil {
		log.Fatal(err)
	}

	approve := func(approver string) error {
		return s.Do(ctx, func(tx *audit.Tx) error {
			r, err := tx.Request("r1")
			if err != nil {
				return err
			}
			r.State, r.DecidedBy, r.DecidedAt = audit.StateApproved, approver, now
			if err := tx.UpdateRequest(r, audit.StatePending); err != nil {
				return err
			}
			_, err = tx.Append(audit.Event{Time: now, Type: "request.approved", Actor: approver,
				User: r.User, Host: r.Host, Login: r.Login, RequestID: r.ID})
			return err
		})
	}
	fmt.Println("bob:", approve("bob"))
	fmt.Println("carol lost the race:", errors.Is(approve("carol"), audit.ErrConflict))

	res, err := s.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("chain ok:", res.OK, "events:", res.Events)
	// Output:
	// bob: <nil>
	// carol lost the race: true
	// chain ok: true events: 1
}
