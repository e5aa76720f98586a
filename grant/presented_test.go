package grant_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"maps"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestPresentedCertificate: a certificate presented under an issued serial
// must be the one issued; each field that differs is named, whoever signed.
func TestPresentedCertificate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	res, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 42"))
	if err != nil {
		t.Fatal(err)
	}
	genuine := res.Certificate
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := ssh.NewSignerFromKey(otherPriv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, field string
		signer      ssh.Signer // default: the real user CA (a leaked key)
		edit        func(c *ssh.Certificate)
	}{
		{name: "genuine", edit: func(*ssh.Certificate) {}},
		{name: "other CA", field: "signing_ca", signer: otherCA, edit: func(*ssh.Certificate) {}},
		{name: "host certificate", field: "cert_type", edit: func(c *ssh.Certificate) { c.CertType = ssh.HostCert }},
		{name: "key", field: "key", edit: func(c *ssh.Certificate) { c.Key = testkit.Signer(t).PublicKey() }},
		{name: "principal", field: "principals", edit: func(c *ssh.Certificate) { c.ValidPrincipals = []string{"root@db1"} }},
		{name: "valid after", field: "valid_after", edit: func(c *ssh.Certificate) { c.ValidAfter-- }},
		{name: "valid before", field: "valid_before", edit: func(c *ssh.Certificate) { c.ValidBefore++ }},
		{name: "key id", field: "key_id", edit: func(c *ssh.Certificate) { c.KeyId += "x" }},
		{name: "extension", field: "extensions", edit: func(c *ssh.Certificate) { c.Extensions["permit-agent-forwarding"] = "" }},
		{name: "critical option", field: "critical_options", edit: func(c *ssh.Certificate) { c.CriticalOptions["force-command"] = "/bin/sh" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *genuine
			c.ValidPrincipals = append([]string(nil), genuine.ValidPrincipals...)
			c.Permissions = ssh.Permissions{CriticalOptions: maps.Clone(genuine.CriticalOptions), Extensions: maps.Clone(genuine.Extensions)}
			if c.CriticalOptions == nil {
				c.CriticalOptions = map[string]string{}
			}
			tt.edit(&c)
			signer := tt.signer
			if signer == nil {
				signer = e.keys.User
			}
			if err := c.SignCert(rand.Reader, signer); err != nil {
				t.Fatal(err)
			}
			uc, err := e.svc.PresentedCertificate(ctx, &c)
			if tt.field == "" {
				if err != nil || uc.Serial != genuine.Serial || uc.User != "alice" {
					t.Fatalf("genuine certificate: %+v, %v", uc, err)
				}
				return
			}
			wantError(t, err, grant.KindForbidden, grant.CodeCertificateMismatch)
			if !strings.Contains(err.Error(), tt.field+" is ") {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}
