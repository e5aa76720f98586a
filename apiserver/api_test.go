package apiserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

func TestIssueCertificate(t *testing.T) {
	e := newEnv(t, 1)
	c := e.client("alice")
	ctx := context.Background()
	key := freshKey(t)
	res, err := c.CreateRequest(ctx, api.CreateRequestBody{Host: "web1", Login: "deploy", Reason: "deploy release 42", PublicKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.Request.State != "issued" || res.Certificate == "" {
		t.Fatalf("request %+v: want issued with a certificate", res.Request)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(res.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	cert := k.(*ssh.Certificate)
	now := e.clock.Now()
	checks := []struct {
		name      string
		got, want any
	}{
		{name: "type", got: cert.CertType, want: uint32(ssh.UserCert)},
		{name: "principals", got: strings.Join(cert.ValidPrincipals, ","), want: "deploy@web1"},
		{name: "valid_after", got: int64(cert.ValidAfter), want: now.Add(-time.Minute).Unix()},
		{name: "valid_before", got: int64(cert.ValidBefore), want: now.Add(10 * time.Minute).Unix()},
		{name: "key id", got: cert.KeyId, want: "jit:" + res.Request.ID + ":alice"},
		{name: "extensions", got: len(cert.Permissions.Extensions), want: 1},
		{name: "permit-pty", got: hasKey(cert.Permissions.Extensions, "permit-pty"), want: true},
		{name: "critical options", got: len(cert.Permissions.CriticalOptions), want: 0},
		{name: "serial non-zero", got: cert.Serial != 0, want: true},
		{name: "serial in response", got: res.Request.Serial, want: cert.Serial},
		{name: "key certified", got: string(ssh.MarshalAuthorizedKey(cert.Key)), want: key + "\n"},
		{name: "signed by user CA", got: string(cert.SignatureKey.Marshal()), want: string(e.keys.User.PublicKey().Marshal())},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	row, err := e.store.Certificate(ctx, cert.Serial)
	if err != nil {
		t.Fatalf("issued certificate not in the audit store: %v", err)
	}
	if row.RequestID != res.Request.ID || row.User != "alice" || row.KeyFingerprint != ssh.FingerprintSHA256(cert.Key) {
		t.Errorf("stored certificate %+v does not match", row)
	}
	evs := e.events(audit.EventFilter{Type: "cert.issued"})
	if len(evs) != 1 || evs[0].Serial != cert.Serial || evs[0].RequestID != res.Request.ID {
		t.Fatalf("cert.issued events = %+v", evs)
	}
	grants, err := c.Grants(ctx)
	if err != nil || len(grants) != 1 || grants[0].Serial != cert.Serial {
		t.Fatalf("grants = %+v, %v", grants, err)
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// wire builds an authorized_keys line from raw wire fields, for keys Go
// will not generate (DSA, small RSA).
func wire(fields ...any) string {
	var b []byte
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			b = append(b, ssh.Marshal(struct{ S string }{v})...)
		case *big.Int:
			b = append(b, ssh.Marshal(struct{ I *big.Int }{v})...)
		}
	}
	name := fields[0].(string)
	return name + " " + base64.StdEncoding.EncodeToString(b)
}

func bigOnes(bits int) *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits))
	return n.Sub(n, big.NewInt(1))
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, 1)
	alice := e.client("alice")
	good := freshKey(t)
	certLine := func() string {
		res, err := alice.CreateRequest(context.Background(), api.CreateRequestBody{Host: "web1", Login: "deploy", Reason: "need a certificate", PublicKey: freshKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Certificate
	}()
	before := e.certCount()
	base := api.CreateRequestBody{Host: "web1", Login: "deploy", Reason: "deploy release 42", PublicKey: good}
	with := func(f func(*api.CreateRequestBody)) api.CreateRequestBody { b := base; f(&b); return b }
	tests := []struct {
		name   string
		body   api.CreateRequestBody
		status int
		code   string
		inMsg  string
	}{
		{name: "bad base64", body: with(func(b *api.CreateRequestBody) { b.PublicKey = "ssh-ed25519 AAAA!!!!" }), status: 400, code: "invalid_public_key", inMsg: "base64"},
		{name: "trailing bytes", body: with(func(b *api.CreateRequestBody) {
			k, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(good))
			b.PublicKey = "ssh-ed25519 " + base64.StdEncoding.EncodeToString(append(k.Marshal(), 0, 1, 2))
		}), status: 400, code: "invalid_public_key", inMsg: "trailing"},
		{name: "certificate", body: with(func(b *api.CreateRequestBody) { b.PublicKey = certLine }), status: 400, code: "invalid_public_key", inMsg: "certificate"},
		{name: "private key", body: with(func(b *api.CreateRequestBody) {
			b.PublicKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
		}), status: 400, code: "invalid_public_key", inMsg: "private key"},
		{name: "rsa 1024", body: with(func(b *api.CreateRequestBody) { b.PublicKey = wire("ssh-rsa", big.NewInt(65537), bigOnes(1024)) }), status: 400, code: "invalid_public_key", inMsg: "1024"},
		{name: "rsa 8200", body: with(func(b *api.CreateRequestBody) { b.PublicKey = wire("ssh-rsa", big.NewInt(65537), bigOnes(8200)) }), status: 400, code: "invalid_public_key", inMsg: "8200"},
		{name: "dsa", body: with(func(b *api.CreateRequestBody) {
			b.PublicKey = wire("ssh-dss", bigOnes(1024), bigOnes(160), big.NewInt(2), bigOnes(1000))
		}), status: 400, code: "invalid_public_key", inMsg: "DSA"},
		{name: "empty key", body: with(func(b *api.CreateRequestBody) { b.PublicKey = "" }), status: 400, code: "invalid_public_key", inMsg: "public_key"},
		{name: "ttl zero", body: with(func(b *api.CreateRequestBody) { b.TTL = "0s" }), status: 400, code: "ttl_invalid", inMsg: "ttl"},
		{name: "ttl negative", body: with(func(b *api.CreateRequestBody) { b.TTL = "-5m" }), status: 400, code: "ttl_invalid", inMsg: "ttl"},
		{name: "ttl unparseable", body: with(func(b *api.CreateRequestBody) { b.TTL = "ten minutes" }), status: 400, code: "ttl_invalid", inMsg: "ten minutes"},
		{name: "ttl over max", body: with(func(b *api.CreateRequestBody) { b.TTL = "2h" }), status: 403, code: "ttl_too_long", inMsg: "max_ttl"},
		{name: "unknown host", body: with(func(b *api.CreateRequestBody) { b.Host = "nosuch" }), status: 403, code: "unknown_host", inMsg: "nosuch"},
		{name: "login not allowed", body: with(func(b *api.CreateRequestBody) { b.Login = "postgres" }), status: 403, code: "login_not_allowed", inMsg: "postgres"},
		{name: "host with comma", body: with(func(b *api.CreateRequestBody) { b.Host = "web1,db1" }), status: 400, code: "invalid_host"},
		{name: "host with star", body: with(func(b *api.CreateRequestBody) { b.Host = "*" }), status: 400, code: "invalid_host"},
		{name: "host with question mark", body: with(func(b *api.CreateRequestBody) { b.Host = "web?" }), status: 400, code: "invalid_host"},
		{name: "host with percent", body: with(func(b *api.CreateRequestBody) { b.Host = "web%h" }), status: 400, code: "invalid_host"},
		{name: "host with space", body: with(func(b *api.CreateRequestBody) { b.Host = "web 1" }), status: 400, code: "invalid_host"},
		{name: "host with newline", body: with(func(b *api.CreateRequestBody) { b.Host = "web1\ndb1" }), status: 400, code: "invalid_host"},
		{name: "host with NUL", body: with(func(b *api.CreateRequestBody) { b.Host = "web1\x00" }), status: 400, code: "invalid_host"},
		{name: "login with comma", body: with(func(b *api.CreateRequestBody) { b.Login = "deploy,root" }), status: 400, code: "invalid_login"},
		{name: "login with star", body: with(func(b *api.CreateRequestBody) { b.Login = "*" }), status: 400, code: "invalid_login"},
		{name: "justification empty", body: with(func(b *api.CreateRequestBody) { b.Reason = "" }), status: 400, code: "justification_missing"},
		{name: "justification short", body: with(func(b *api.CreateRequestBody) { b.Reason = "fix" }), status: 403, code: "justification_too_short"},
		{name: "justification long", body: with(func(b *api.CreateRequestBody) { b.Reason = strings.Repeat("x", 1001) }), status: 400, code: "justification_too_long"},
		{name: "justification control", body: with(func(b *api.CreateRequestBody) { b.Reason = "deploy release\x1b[2J 42" }), status: 400, code: "justification_invalid"},
		{name: "ticket mismatch", body: with(func(b *api.CreateRequestBody) { b.Host = "db1"; b.Reason = "deploy release 42" }), status: 403, code: "ticket_mismatch"},
		{name: "another user's name", body: with(func(b *api.CreateRequestBody) { b.User = "bob" }), status: 403, code: "user_mismatch", inMsg: "bob"},
		{name: "break glass not allowed", body: with(func(b *api.CreateRequestBody) { b.BreakGlass = true }), status: 403, code: "break_glass_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seqBefore := lastSeq(e)
			_, err := alice.CreateRequest(context.Background(), tc.body)
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an API error", err)
			}
			if ae.Status != tc.status || ae.Code != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", ae.Status, ae.Code, ae.Message, tc.status, tc.code)
			}
			if !strings.Contains(ae.Message, tc.inMsg) {
				t.Errorf("message %q does not name %q", ae.Message, tc.inMsg)
			}
			denials := e.events(audit.EventFilter{Type: "request.denied", AfterSeq: seqBefore})
			if len(denials) != 1 || denials[0].Code != tc.code || denials[0].User != "alice" {
				t.Errorf("denial not audited with its code: %+v", denials)
			}
		})
	}
	if got := e.certCount(); got != before {
		t.Errorf("bad requests issued %d certificates", got-before)
	}
}

func lastSeq(e *env) int64 {
	evs := e.events(audit.EventFilter{})
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// raw sends a request with an arbitrary body and headers.
func raw(t *testing.T, e *env, method, path, token string, body []byte) (int, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequest(method, e.server.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb
}

func TestBadBodiesAndTokens(t *testing.T) {
	e := newEnv(t, 1)
	alice := e.client("alice")
	token := loginToken(t, e, "alice")
	_ = alice
	tests := []struct {
		name   string
		path   string
		token  string
		body   []byte
		status int
		code   string
	}{
		{name: "body over 64 KiB", path: "/v1/requests", token: token, body: []byte(`{"host":"` + strings.Repeat("a", 70<<10) + `"}`), status: 413, code: "body_too_large"},
		{name: "not JSON", path: "/v1/requests", token: token, body: []byte("host=web1"), status: 400, code: "bad_json"},
		{name: "unknown field", path: "/v1/requests", token: token, body: []byte(`{"host":"web1","principals":["*"]}`), status: 400, code: "bad_json"},
		{name: "trailing data", path: "/v1/requests", token: token, body: []byte(`{"host":"web1"} {"host":"db1"}`), status: 400, code: "bad_json"},
		{name: "no token", path: "/v1/requests", body: []byte(`{}`), status: 401, code: "unauthenticated"},
		{name: "forged token", path: "/v1/requests", token: "jit_" + strings.Repeat("A", 43), body: []byte(`{}`), status: 401, code: "unauthenticated"},
		{name: "token without prefix", path: "/v1/requests", token: "abc", body: []byte(`{}`), status: 401, code: "unauthenticated"},
		{name: "admin operation as user", path: "/v1/admin/reload", token: token, body: []byte(`{}`), status: 403, code: "not_admin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, eb := raw(t, e, http.MethodPost, tc.path, tc.token, tc.body)
			if status != tc.status || eb.Error.Code != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, eb.Error.Code, eb.Error.Message, tc.status, tc.code)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		e.clock.Advance(grant.DefaultTokenTTL + time.Second)
		status, eb := raw(t, e, http.MethodGet, "/v1/grants", token, nil)
		if status != 401 || !strings.Contains(eb.Error.Message, "expired") {
			t.Fatalf("got %d %+v, want 401 expired", status, eb)
		}
	})
}

func loginToken(t *testing.T, e *env, name string) string {
	t.Helper()
	c := e.client("")
	res, err := c.Login(context.Background(), name, e.ids[name].signer, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res.Token
}

func TestLoginFailures(t *testing.T) {
	e := newEnv(t, 1)
	mallory := newIdentity(t, "mallory")
	tests := []struct {
		name   string
		user   string
		signer func() *wrongSigner
		code   string
	}{
		{name: "unknown user", user: "mallory", signer: func() *wrongSigner { return &wrongSigner{Signer: mallory.signer} }, code: "unknown_user"},
		{name: "key not enrolled", user: "alice", signer: func() *wrongSigner { return &wrongSigner{Signer: mallory.signer} }, code: "key_not_enrolled"},
		{name: "bad signature", user: "alice", signer: func() *wrongSigner { return &wrongSigner{Signer: e.ids["alice"].signer, corrupt: true} }, code: "bad_signature"},
		{name: "signature for another server", user: "alice", signer: func() *wrongSigner { return &wrongSigner{Signer: e.ids["alice"].signer, otherServer: true} }, code: "bad_signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq(e)
			_, err := e.client("").Login(context.Background(), tc.user, tc.signer(), 0)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.code || ae.Status/100 != 4 {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			evs := e.events(audit.EventFilter{Type: "login.failed", AfterSeq: before})
			if len(evs) != 1 || evs[0].Code != tc.code {
				t.Fatalf("failed login not audited: %+v", evs)
			}
		})
	}
}

// wrongSigner signs badly on purpose.
type wrongSigner struct {
	ssh.Signer
	corrupt, otherServer bool
}

func (w *wrongSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	if w.otherServer {
		data = bytes.Replace(data, []byte("SHA256:"), []byte("SHA256:x"), 1)
	}
	sig, err := w.Signer.Sign(r, data)
	if err == nil && w.corrupt {
		sig.Blob[0] ^= 0xff
	}
	return sig, err
}

func TestAdminsKeptApartAndAuditVisible(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	admin := e.client("root-admin")
	_, err := admin.CreateRequest(ctx, api.CreateRequestBody{Host: "web1", Login: "deploy", Reason: "deploy release 42", PublicKey: freshKey(t)})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != "admin_access_forbidden" {
		t.Fatalf("admin asking for host access: err = %v, want admin_access_forbidden", err)
	}
	alice := e.client("alice")
	if _, err := alice.Events(ctx, api.EventQuery{}); !errors.As(err, &ae) || ae.Code != "not_auditor" {
		t.Fatalf("alice reading the audit log: err = %v, want not_auditor", err)
	}
	sec := e.client("sec")
	evs, err := sec.Events(ctx, api.EventQuery{Event: "request."})
	if err != nil || len(evs) != 1 || evs[0].Code != "admin_access_forbidden" {
		t.Fatalf("auditor events = %+v, %v", evs, err)
	}
	v, err := sec.Verify(ctx)
	if err != nil || !v.OK {
		t.Fatalf("verify = %+v, %v", v, err)
	}
}

func TestRevokeAndKRL(t *testing.T) {
	sshdtest.Require(t, "ssh-keygen")
	e := newEnv(t, 1)
	ctx := context.Background()
	alice := e.client("alice")
	issue := func() (string, uint64) {
		res, err := alice.CreateRequest(ctx, api.CreateRequestBody{Host: "web1", Login: "deploy", Reason: "deploy release 42", PublicKey: freshKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "id-cert.pub")
		if err := os.WriteFile(path, []byte(res.Certificate+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path, res.Request.Serial
	}
	revokedPath, revokedSerial := issue()
	keptPath, _ := issue()

	var ae *api.Error
	if err := alice.Revoke(ctx, revokedSerial, "lost laptop"); !errors.As(err, &ae) || ae.Code != "not_admin" {
		t.Fatalf("alice revoking: err = %v, want not_admin", err)
	}
	admin := e.client("root-admin")
	if err := admin.Revoke(ctx, revokedSerial, "lost laptop"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Revoke(ctx, 12345, "typo"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("revoking an unknown serial: err = %v, want 404", err)
	}
	evs := e.events(audit.EventFilter{Type: "cert.revoked"})
	if len(evs) != 1 || evs[0].Serial != revokedSerial || evs[0].Actor != "root-admin" {
		t.Fatalf("cert.revoked events = %+v", evs)
	}
	krl, err := e.client("").KRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	krlPath := filepath.Join(t.TempDir(), "jitssh.krl")
	if err := os.WriteFile(krlPath, krl, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{revokedPath, true}, {keptPath, false}} {
		out, _ := exec.Command(sshdtest.Path("ssh-keygen"), "-Q", "-f", krlPath, tc.path).CombinedOutput()
		if got := strings.Contains(string(out), "REVOKED"); got != tc.want {
			t.Errorf("ssh-keygen -Q %s: revoked = %v, want %v\n%s", filepath.Base(tc.path), got, tc.want, out)
		}
	}
	grants, err := alice.Grants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(grants) != 1 || grants[0].Serial == revokedSerial {
		t.Errorf("grants after revocation = %+v, want only the kept certificate", grants)
	}
}
