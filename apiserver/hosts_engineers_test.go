package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// Each caller sees only the hosts and logins their roles grant; an admin
// who may not request access sees none, and a caller without a token is
// refused.
func TestHostsListsOnlyRequestable(t *testing.T) {
	e := newEnv(t, 1)
	prod := func(name string) api.HostEntry {
		return api.HostEntry{Name: name, Labels: map[string]string{"env": "prod"}, Logins: []api.HostLogin{
			{Login: "deploy", Role: "prod", Ticket: true, MaxTTL: "30m0s"},
			{Login: "root", Role: "prod-root", Approval: true, MaxTTL: "1h0m0s"},
		}}
	}
	web1 := api.HostEntry{Name: "web1", Labels: map[string]string{"env": "staging"}, Logins: []api.HostLogin{
		{Login: "deploy", Role: "staging", MaxTTL: "30m0s"},
		{Login: "root", Role: "emergency", Approval: true, Ticket: true, MaxTTL: "1h0m0s"},
	}}
	for _, tc := range []struct {
		user string
		want []api.HostEntry
	}{
		{user: "alice", want: []api.HostEntry{prod("db1"), prod("db2"), web1}},
		{user: "dave", want: []api.HostEntry{}},
		{user: "root-admin", want: []api.HostEntry{}},
		{user: "sec", want: []api.HostEntry{}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			got, err := e.client(tc.user).Hosts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("hosts of %s:\n%+v\nwant\n%+v", tc.user, got, tc.want)
			}
		})
	}
	_, err := e.client("").Hosts(context.Background())
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("without a login: %v, want 401", err)
	}
}
