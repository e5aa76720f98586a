package daemon

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/grant"
)

// TestDispatchAsksForRefreshes: which events make the feed refresh the
// policy's users: enrolments, hosts and SSO identity changes, not key
// logins (a scanner's refusals must not cost every replica a refresh each)
// nor events that change nothing merged.
func TestDispatchAsksForRefreshes(t *testing.T) {
	tests := []struct {
		name string
		e    audit.Event
		want bool
	}{
		{"enrolment", audit.Event{Type: "admin.user.add", User: "zoe"}, true},
		{"removal", audit.Event{Type: "admin.user.remove", User: "zoe"}, true},
		{"host joined", audit.Event{Type: grant.EventHostJoined, Host: "db9"}, true},
		{"host removed", audit.Event{Type: grant.EventHostRemoved, Host: "db9"}, true},
		{"sso login", audit.Event{Type: "login", User: "sam", Data: map[string]string{"method": grant.MethodSSO}}, true},
		{"refused refresh", audit.Event{Type: "login.failed", User: "sam", Data: map[string]string{"method": grant.MethodRefresh}}, true},
		{"sso login revoked", audit.Event{Type: "login.revoked", User: "sam", Data: map[string]string{"method": grant.MethodSSO}}, true},
		{"key login", audit.Event{Type: "login", User: "zoe", Data: map[string]string{"method": grant.MethodKey}}, false},
		{"key login refused", audit.Event{Type: "login.failed", User: "x"}, false},
		{"revocation", audit.Event{Type: "cert.revoked", Serial: 7}, false},
		{"logout", audit.Event{Type: "console.logout", User: "zoe"}, false},
	}
	f := newReplicaFeed("me", slog.New(slog.DiscardHandler), nil, func() *bastion.Server { return nil })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.dispatch(context.Background(), []audit.Event{tt.e}); err != nil {
				t.Fatal(err)
			}
			got := false
			select {
			case <-f.refresh:
				got = true
			default:
			}
			if got != tt.want {
				t.Errorf("refresh asked: %v, want %v", got, tt.want)
			}
		})
	}
}
