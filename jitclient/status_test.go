package jitclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/tlspin"
)

// Refusal names what the daemon knows of a refused certificate, and
// nothing when the daemon holds it valid or cannot be asked.
func TestRefusal(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	revokedAt := now.Add(-time.Minute)
	valid := api.GrantStatus{Grant: api.Grant{Serial: 7, Principals: []string{"root@db1"}, ValidAfter: now.Add(-time.Hour), ValidBefore: now.Add(time.Hour)}, State: api.CertValid}
	tests := []struct {
		name       string
		principals []string
		answer     func(w http.ResponseWriter)
		offline    bool
		want       string // in the refusal; "" means none
	}{
		{name: "valid", answer: answerStatus(valid)},
		{name: "revoked", want: "was revoked at " + revokedAt.Format(time.RFC3339) + ": laptop stolen", answer: answerStatus(func() api.GrantStatus {
			s := valid
			s.State, s.RevokedAt, s.RevokeReason = api.CertRevoked, &revokedAt, "laptop stolen"
			return s
		}())},
		{name: "expired", want: "expired at", answer: answerStatus(func() api.GrantStatus {
			s := valid
			s.State, s.ValidBefore = api.CertExpired, now.Add(-time.Minute)
			return s
		}())},
		{name: "unknown", want: "not known to the daemon", answer: func(w http.ResponseWriter) {
			writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeCertificateUnknown, Message: "no"}})
		}},
		{name: "not issued for this host", principals: []string{"root@db2"}, want: "not issued for root@db1", answer: answerStatus(valid)},
		{name: "daemon unreachable", offline: true, answer: answerStatus(valid)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/grants/7" {
					http.NotFound(w, r)
					return
				}
				tc.answer(w)
			}))
			defer srv.Close()
			c, err := api.NewClient(srv.URL, tlspin.Fingerprint(srv.Certificate().Raw), "tok")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.offline {
				srv.Close()
			}
			principals := tc.principals
			if principals == nil {
				principals = []string{"root@db1"}
			}
			g := creds.Grant{Login: "root", Host: "db1", Cert: &ssh.Certificate{Serial: 7, ValidPrincipals: principals}}
			cl := &Client{API: c, Config: creds.Config{CA: srv.URL, User: "alice"}}
			got := cl.Refusal(context.Background(), g, now)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("Refusal = %q, want %q", got, tc.want)
			}
		})
	}
}

func answerStatus(s api.GrantStatus) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { writeJSON(w, http.StatusOK, s) }
}
