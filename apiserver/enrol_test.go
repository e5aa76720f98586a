package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// enrolPath enrols a user one way and returns the error code, "" on success.
type enrolPath func(t *testing.T, e *env, u api.UserBody) string

// viaAPI is POST /v1/admin/users as an admin.
func viaAPI(t *testing.T, e *env, u api.UserBody) string {
	err := e.client("root-admin").AddUser(context.Background(), u)
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	if err != nil {
		t.Fatal(err)
	}
	return ""
}

// viaJitd is what jitd user add does on the data directory: its own
// grant.Admin over the store and the policy file.
func viaJitd(t *testing.T, e *env, u api.UserBody) string {
	admin, err := grant.NewAdmin(grant.AdminConfig{Store: e.store, Policy: e.policy.Current, Reloader: e.policy})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Enrol(context.Background(), grant.Caller{User: "operator:root"}, grant.Enrolment{Name: u.Name, Groups: u.Groups, Keys: u.Keys, Via: "jitd user add"})
	var ge *grant.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	if err != nil {
		t.Fatal(err)
	}
	return ""
}

// TestEnrolmentPathsAgree checks that the API and jitd user add refuse and
// accept the same enrolments with the same codes, record the same event on
// success and change nothing on refusal.
func TestEnrolmentPathsAgree(t *testing.T) {
	zoe := func(t *testing.T) api.UserBody {
		return api.UserBody{Name: "zoe", Groups: []string{"dev"}, Keys: []string{freshKey(t)}}
	}
	with := func(f func(*api.UserBody)) func(t *testing.T) api.UserBody {
		return func(t *testing.T) api.UserBody { u := zoe(t); f(&u); return u }
	}
	shared := freshKey(t)
	zoeShared := with(func(u *api.UserBody) { u.Keys = []string{shared} })
	tests := []struct {
		name string
		// pre runs first on the same daemon, through jitd's path.
		pre  func(t *testing.T) api.UserBody
		user func(t *testing.T) api.UserBody
		code string
	}{
		{name: "new user", user: zoe},
		{name: "bad name", user: with(func(u *api.UserBody) { u.Name = "Zoe Smith" }), code: api.CodeInvalidUser},
		{name: "empty name", user: with(func(u *api.UserBody) { u.Name = "" }), code: api.CodeInvalidUser},
		{name: "no key", user: with(func(u *api.UserBody) { u.Keys = nil }), code: api.CodeInvalidPublicKey},
		{name: "bad key", user: with(func(u *api.UserBody) { u.Keys = []string{"ssh-ed25519 AAAA!!!!"} }), code: api.CodeInvalidPublicKey},
		{name: "one bad key of two", user: with(func(u *api.UserBody) { u.Keys = append(u.Keys, "not a key") }), code: api.CodeInvalidPublicKey},
		{name: "private key", user: with(func(u *api.UserBody) {
			u.Keys = []string{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"}
		}), code: api.CodeInvalidPublicKey},
		{name: "bad group", user: with(func(u *api.UserBody) { u.Groups = []string{"dev ops"} }), code: api.CodeInvalidGroup},
		{name: "policy user, other groups", user: with(func(u *api.UserBody) { u.Name, u.Groups = "alice", []string{"admins"} }), code: api.CodeGroupsInPolicy},
		{name: "policy user, same groups", user: with(func(u *api.UserBody) { u.Name = "alice" })},
		{name: "policy user, no groups", user: with(func(u *api.UserBody) { u.Name, u.Groups = "alice", nil })},
		{name: "key of another enrolled user", pre: zoeShared, user: with(func(u *api.UserBody) { u.Name, u.Keys = "yan", []string{shared} }), code: api.CodeKeyInUse},
		{name: "own key again", pre: zoeShared, user: zoeShared},
		{name: "enrolled name again", pre: zoe, user: with(func(u *api.UserBody) { u.Groups = []string{"approvers"} })},
	}
	paths := []struct {
		name string
		do   enrolPath
	}{{"api", viaAPI}, {"jitd user add", viaJitd}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.user(t)
			for _, p := range paths {
				e := newEnv(t, 1)
				if tc.pre != nil {
					if code := viaJitd(t, e, tc.pre(t)); code != "" {
						t.Fatalf("pre: %s", code)
					}
				}
				before := lastSeq(e)
				usersBefore, err := e.store.Users(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if got := p.do(t, e, u); got != tc.code {
					t.Fatalf("%s: code %q, want %q", p.name, got, tc.code)
				}
				adds := e.events(audit.EventFilter{Type: "admin.user.add", AfterSeq: before})
				users, err := e.store.Users(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if tc.code != "" {
					if len(adds) != 0 || len(users) != len(usersBefore) {
						t.Errorf("%s: refused enrolment left %d events and %d users (was %d)", p.name, len(adds), len(users), len(usersBefore))
					}
					continue
				}
				if len(adds) != 1 || adds[0].User != u.Name || adds[0].Data["groups"] != strings.Join(u.Groups, ",") || adds[0].Data["keys"] != "1" {
					t.Errorf("%s: admin.user.add events = %+v", p.name, adds)
				}
				if pu, ok := e.policy.Current().User(u.Name); !ok || len(pu.Keys) == 0 {
					t.Errorf("%s: %s not in the policy in force after enrolment", p.name, u.Name)
				}
			}
		})
	}
}

// TestRacingEnrolmentsOfOneKey: enrolments of one key under different names
// that race through the API give exactly one success; the others are
// key_in_use, and the store holds the key once.
func TestRacingEnrolmentsOfOneKey(t *testing.T) {
	e := newEnv(t, 1)
	key := freshKey(t)
	const racers = 8
	codes := make([]string, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = viaAPI(t, e, api.UserBody{Name: fmt.Sprintf("racer%d", i), Groups: []string{"dev"}, Keys: []string{key}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case "":
			ok++
		case api.CodeKeyInUse:
		default:
			t.Errorf("racing enrolment refused with %q", c)
		}
	}
	users, err := e.store.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(users) != 1 {
		t.Fatalf("%d racing enrolments succeeded, %d users stored (codes %q); want exactly one", ok, len(users), codes)
	}
}
