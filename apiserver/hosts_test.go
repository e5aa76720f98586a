package apiserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestHostStatuses checks the status and code of each host endpoint's
// outcomes, through the client jit uses.
func TestHostStatuses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 1)
	admin := e.client("root-admin")
	anon := e.client("")
	hostKey := testkit.Signer(t)
	keyLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey.PublicKey())))
	mkToken := func(name string) string {
		t.Helper()
		tok, err := admin.CreateHostToken(ctx, api.HostTokenRequest{Name: name, Address: "10.0.0.5:22", Labels: map[string]string{"env": "staging"}})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		return tok.Token
	}
	joined, err := anon.JoinHost(ctx, api.HostJoinRequest{Token: mkToken("app1"), HostKey: keyLine})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if joined.Host != "app1" || !strings.HasPrefix(joined.HostCertificate, "ssh-ed25519-cert-v01@openssh.com ") ||
		!strings.HasPrefix(joined.TargetCA, "ssh-ed25519 ") || len(joined.KRL) == 0 || strings.Join(joined.Logins, ",") != "deploy" {
		t.Fatalf("join answer %+v", joined)
	}
	used := mkToken("app2")
	if _, err := anon.JoinHost(ctx, api.HostJoinRequest{Token: used, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey())))}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		do     func() error
		status int
		code   string
	}{
		{name: "token as a user", do: func() error {
			_, err := e.client("alice").CreateHostToken(ctx, api.HostTokenRequest{Name: "x1", Address: "10.0.0.1:22"})
			return err
		}, status: 403, code: api.CodeNotAdmin},
		{name: "token with a bad address", do: func() error {
			_, err := admin.CreateHostToken(ctx, api.HostTokenRequest{Name: "x1", Address: "10.0.0.1"})
			return err
		}, status: 400, code: api.CodeInvalidAddress},
		{name: "token ttl over 24h", do: func() error {
			_, err := admin.CreateHostToken(ctx, api.HostTokenRequest{Name: "x1", Address: "10.0.0.1:22", TTL: "25h"})
			return err
		}, status: 400, code: api.CodeTTLTooLong},
		{name: "join with a used token", do: func() error {
			_, err := anon.JoinHost(ctx, api.HostJoinRequest{Token: used, HostKey: keyLine})
			return err
		}, status: 401, code: api.CodeJoinTokenInvalid},
		{name: "join with another key", do: func() error {
			other := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey())))
			_, err := anon.JoinHost(ctx, api.HostJoinRequest{Token: mkToken("app1"), HostKey: other})
			return err
		}, status: 409, code: api.CodeHostKeyChanged},
		{name: "renew with the host key", do: func() error {
			_, err := anon.RenewHostWithKey(ctx, "app1", hostKey)
			return err
		}},
		{name: "renew with another key", do: func() error {
			_, err := anon.RenewHostWithKey(ctx, "app1", testkit.Signer(t))
			return err
		}, status: 401, code: api.CodeBadSignature},
		{name: "renew an unknown host", do: func() error {
			_, err := anon.RenewHostWithKey(ctx, "nosuch", hostKey)
			return err
		}, status: 404, code: api.CodeHostNotEnrolled},
		{name: "list expiring as a user", do: func() error {
			_, err := e.client("alice").AdminHosts(ctx, 72*time.Hour)
			return err
		}, status: 403, code: api.CodeNotAdmin},
		{name: "remove without reason", do: func() error { return admin.RemoveHost(ctx, "app1", "") }, status: 400, code: api.CodeReasonMissing},
		{name: "remove", do: func() error { return admin.RemoveHost(ctx, "app2", "decommissioned") }},
		{name: "remove again", do: func() error { return admin.RemoveHost(ctx, "app2", "decommissioned") }, status: 410, code: api.CodeHostRemoved},
		{name: "renew a removed host", do: func() error {
			_, err := anon.RenewHostWithKey(ctx, "app2", hostKey)
			return err
		}, status: 410, code: api.CodeHostRemoved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var ae *api.Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.code != "" && (!errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code):
				t.Fatalf("err = %v, want %d %s", err, tc.status, tc.code)
			}
		})
	}
	hosts, err := admin.AdminHosts(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hosts {
		got = append(got, h.Name+":"+h.Source)
	}
	if strings.Join(got, " ") != "app1:store db1:policy db2:policy web1:policy" {
		t.Errorf("admin hosts %v", got)
	}
	kh, err := anon.KnownHosts(ctx)
	if err != nil || strings.Count(kh, "@revoked * ") != 1 || !strings.HasPrefix(kh, "@cert-authority * ssh-ed25519 ") {
		t.Errorf("known_hosts %q, %v", kh, err)
	}
}

// TestKRLHasHostSection: a removed host's certificate serial is in the
// KRL's host-CA section.
func TestKRLHasHostSection(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 1)
	admin := e.client("root-admin")
	tok, err := admin.CreateHostToken(ctx, api.HostTokenRequest{Name: "app1", Address: "10.0.0.5:22"})
	if err != nil {
		t.Fatal(err)
	}
	joined, err := e.client("").JoinHost(ctx, api.HostJoinRequest{Token: tok.Token,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey())))})
	if err != nil {
		t.Fatal(err)
	}
	before := krlOf(t, e)
	if err := admin.RemoveHost(ctx, "app1", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	after := krlOf(t, e)
	hostCA := string(e.keys.Host.PublicKey().Marshal())
	if strings.Contains(before, hostCA) || !strings.Contains(after, hostCA) {
		t.Fatalf("host CA section in the KRL before removal %v, after %v; want only after", strings.Contains(before, hostCA), strings.Contains(after, hostCA))
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(joined.HostCertificate))
	if err != nil {
		t.Fatal(err)
	}
	if cert := pub.(*ssh.Certificate); cert.CertType != ssh.HostCert {
		t.Fatalf("certificate type %d", cert.CertType)
	}
}

func krlOf(t *testing.T, e *env) string {
	t.Helper()
	resp, err := e.server.Client().Get(e.server.URL + "/v1/krl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/krl: %d %v", resp.StatusCode, err)
	}
	return string(b)
}
