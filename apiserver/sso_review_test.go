package apiserver_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// lastEvent returns the last event of type typ, failing when there is none.
func (s *ssoEnv) lastEvent(t *testing.T, typ string) audit.Event {
	t.Helper()
	evs := s.events(audit.EventFilter{Type: typ})
	if len(evs) == 0 {
		t.Fatalf("no %s event", typ)
	}
	return evs[len(evs)-1]
}

// TestSSONameTakenOverByLocalUser checks that a name an SSO login holds
// and that later becomes a local user (in the file, or by key enrolment)
// gives the SSO person none of the local user's roles: their token stops
// working at once (revoked and recorded once), and a new SSO login under
// that name is refused local_user: the enrolment wins.
func TestSSONameTakenOverByLocalUser(t *testing.T) {
	for _, how := range []string{"file", "enrolment"} {
		t.Run(how, func(t *testing.T) {
			s := newSSOEnv(t)
			ctx := context.Background()
			c, _, err := s.codeLogin(t, "erin", "pw-erin")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Grants(ctx); err != nil {
				t.Fatal(err)
			}
			erin := newIdentity(t, "erin")
			switch how {
			case "file":
				text := strings.Replace(mustRead(t, s.policyPath), "users:\n", "users:\n  erin: {groups: [admins], keys: [\""+erin.keyLine()+"\"]}\n", 1)
				if err := os.WriteFile(s.policyPath, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := s.policy.Reload(ctx); err != nil {
					t.Fatal(err)
				}
			case "enrolment":
				if err := s.client("root-admin").AddUser(ctx, api.UserBody{Name: "erin", Groups: []string{"admins"}, Keys: []string{erin.keyLine()}}); err != nil {
					t.Fatal(err)
				}
			}
			if !s.policy.Current().IsAdmin("erin") {
				t.Fatal("the local erin is not an admin")
			}
			for i := range 2 {
				if _, err := c.Users(ctx); err == nil {
					t.Fatalf("use %d: the SSO erin's token got the local erin's admin rights", i)
				}
				_, err = c.Grants(ctx)
				wantCode(t, err, api.CodeUnauthenticated)
			}
			if evs := s.events(audit.EventFilter{Type: "login.revoked"}); len(evs) != 1 || evs[0].User != "erin" || evs[0].Data["reason"] != "local_user" || evs[0].Data["provider"] != "corp" {
				t.Fatalf("revocation events %+v, want one for erin, reason local_user, provider corp", evs)
			}
			_, _, err = s.codeLogin(t, "erin", "pw-erin")
			wantCode(t, err, api.CodeSSOTokenInvalid)
			if ev := s.lastEvent(t, "login.failed"); ev.Data["reason"] != "local_user" {
				t.Fatalf("refusal %+v, want reason local_user", ev)
			}
		})
	}
}

// TestSSORenameAtProviderRefused checks that one provider subject cannot
// hold two names: after a rename at the provider the login is refused
// identity_conflict (audited), and the store refuses a second name for a
// subject whatever grant does.
func TestSSORenameAtProviderRefused(t *testing.T) {
	s := newSSOEnv(t)
	ctx := context.Background()
	if _, _, err := s.codeLogin(t, "erin", "pw-erin"); err != nil {
		t.Fatal(err)
	}
	if err := s.op.SetUsername("erin", "erin2"); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.codeLogin(t, "erin", "pw-erin")
	wantCode(t, err, api.CodeSSOTokenInvalid)
	if ev := s.lastEvent(t, "login.failed"); ev.Data["reason"] != "identity_conflict" || ev.User != "erin2" || ev.Data["provider"] != "corp" {
		t.Fatalf("refusal %+v, want identity_conflict for erin2 at corp", ev)
	}
	if _, ok := s.policy.Current().User("erin2"); ok {
		t.Fatal("the renamed subject got a second name")
	}
	err = s.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.PutSSOIdentity(audit.SSOIdentity{Name: "erin3", Provider: "corp", Subject: "erin", Groups: []string{"eng-oncall"},
			ExpiresAt: time.Now().Add(time.Hour), UpdatedAt: time.Now()})
	})
	if err == nil {
		t.Fatal("the store took a second name for subject erin at corp")
	}
}

// TestSSOConcurrentRefresh checks that two refreshes of one token at once
// leave the person logged in: one gets the new token, the other is told
// the token is no longer valid, and the identity keeps its groups.
func TestSSOConcurrentRefresh(t *testing.T) {
	s := newSSOEnv(t)
	ctx := context.Background()
	_, lr, err := s.codeLogin(t, "erin", "pw-erin")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	answers := make([]api.LoginResponse, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.client("")
			c.SetToken(lr.Token)
			answers[i], errs[i] = c.RefreshLogin(ctx)
		}()
	}
	wg.Wait()
	won := 0
	for i := range 2 {
		if errs[i] == nil {
			won = i
		}
	}
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("refreshes: %v and %v, want one to succeed", errs[0], errs[1])
	}
	wantCode(t, errs[1-won], api.CodeUnauthenticated)
	c := s.client("")
	c.SetToken(answers[won].Token)
	if _, err := c.Grants(ctx); err != nil {
		t.Fatalf("the winning refresh's token: %v", err)
	}
	if g := s.groups("erin"); len(g) == 0 {
		t.Fatal("the losing refresh emptied erin's groups")
	}
}

// TestSSOFinishRefusalNamesProvider checks that a refusal at finish (here
// a state mismatch) records the flow's provider.
func TestSSOFinishRefusalNamesProvider(t *testing.T) {
	s := newSSOEnv(t)
	ctx := context.Background()
	c := s.client("")
	st, err := c.SSOStart(ctx, "corp", "http://127.0.0.1:45678/callback")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SSOFinish(ctx, st.Flow, "some-code", "forged-state")
	wantCode(t, err, api.CodeSSOStateMismatch)
	if ev := s.lastEvent(t, "login.failed"); ev.Code != api.CodeSSOStateMismatch || ev.Data["provider"] != "corp" {
		t.Fatalf("refusal %+v, want provider corp", ev)
	}
}
