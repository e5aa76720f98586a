package apiserver_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// TestAdminOutcomesAudited checks that each administrative outcome is
// answered with its code and recorded once, by the domain.
func TestAdminOutcomesAudited(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	admin := e.client("root-admin")
	good, err := os.ReadFile(e.policyPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		do     func() error
		status int
		code   string
		// event and eventCode are the record the outcome must leave, once.
		event, eventCode string
	}{
		{name: "reload ok", do: func() error { return admin.Reload(ctx) }, event: "policy.reload", eventCode: "ok"},
		{name: "reload of a bad file", do: func() error {
			if err := os.WriteFile(e.policyPath, []byte("users: [\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(e.policyPath, good, 0o600)
			return admin.Reload(ctx)
		}, status: 400, code: api.CodePolicyInvalid, event: "policy.reload", eventCode: "failed"},
		{name: "reload as a user", do: func() error { return e.client("alice").Reload(ctx) }, status: 403, code: api.CodeNotAdmin, event: "access.denied", eventCode: "not_admin"},
		{name: "events as a user", do: func() error { _, err := e.client("alice").Events(ctx, api.EventQuery{}); return err },
			status: 403, code: api.CodeNotAuditor, event: "access.denied", eventCode: "not_auditor"},
		{name: "revoke without reason", do: func() error { return admin.Revoke(ctx, 1, "") }, status: 400, code: api.CodeReasonMissing},
		{name: "revoke unknown serial", do: func() error { return admin.Revoke(ctx, 12345, "typo") }, status: 404, code: api.CodeNotFound},
		{name: "remove a policy-file user", do: func() error { return admin.RemoveUser(ctx, "alice") }, status: 404, code: api.CodeNotFound},
		{name: "remove an enrolled user", do: func() error {
			if err := admin.AddUser(ctx, api.UserBody{Name: "zoe", Keys: []string{freshKey(t)}}); err != nil {
				t.Fatal(err)
			}
			return admin.RemoveUser(ctx, "zoe")
		}, event: "admin.user.remove", eventCode: "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq(e)
			err := tc.do()
			var ae *api.Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.code != "" && (!errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code):
				t.Fatalf("err = %v, want %d %s", err, tc.status, tc.code)
			}
			if tc.event == "" {
				return
			}
			evs := e.events(audit.EventFilter{Type: tc.event, AfterSeq: before})
			if len(evs) != 1 || evs[0].Code != tc.eventCode {
				t.Errorf("%s events = %+v, want one with code %s", tc.event, evs, tc.eventCode)
			}
		})
	}
	if u, ok := e.policy.Current().User("alice"); !ok || len(u.Groups) == 0 {
		t.Errorf("after the failed reload the last good policy is not in force: alice = %+v, %v", u, ok)
	}
}
