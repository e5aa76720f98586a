package grant_test

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/policy"
)

const testFingerprint = "SHA256:test-api-pin"

// hostsReloader merges the store's hosts (not removed) into the test
// policy, as livepolicy does for the daemon.
type hostsReloader struct {
	e    *env
	base *policy.Policy
}

func (r hostsReloader) ReloadChange(context.Context) (livepolicy.Change, error) {
	return livepolicy.Change{}, nil
}

func (r hostsReloader) RefreshUsers(ctx context.Context) error {
	rows, err := r.e.store.Hosts(ctx)
	if err != nil {
		return err
	}
	var extra []policy.Host
	for _, h := range rows {
		if h.RemovedAt.IsZero() {
			extra = append(extra, policy.Host{Name: h.Name, Address: h.Address, Labels: h.Labels})
		}
	}
	r.e.pol.Store(r.base.WithHosts(extra))
	return nil
}

var boss = grant.Caller{User: "boss", ClientAddr: "127.0.0.1"}

func newHosts(t *testing.T) (*env, *grant.Hosts) {
	t.Helper()
	e := newEnv(t)
	return e, hostsOn(t, e)
}

// hostsOn is the Hosts service of e, renewals signed over the test
// fingerprint, the bastion's names reserved.
func hostsOn(t *testing.T, e *env) *grant.Hosts {
	t.Helper()
	h, err := e.svc.NewHosts(grant.HostsConfig{Reloader: hostsReloader{e: e, base: e.pol.Load()},
		Message:  func(name, nonce string) []byte { return api.HostRenewMessage(name, nonce, testFingerprint) },
		Reserved: []string{"jitssh-bastion", "bastion.example.com", "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func hostKeyLine(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

func token(t *testing.T, h *grant.Hosts, name string, labels map[string]string) string {
	t.Helper()
	tok, err := h.CreateToken(context.Background(), boss, grant.HostTokenSpec{Name: name, Address: "10.0.0.5:22", Labels: labels})
	if err != nil {
		t.Fatalf("create token for %s: %v", name, err)
	}
	if !strings.HasPrefix(tok.Token, "jhj_") || len(tok.Token) != 4+43 {
		t.Fatalf("token %q is not jhj_ and 32 bytes of base64url", tok.Token)
	}
	return tok.Token
}

// TestJoin: a join issues a host certificate from the host CA with the name
// and the address's host as principals for 30 days, writes the host and the
// certificate rows, spends the token and puts the host in the policy.
func TestJoin(t *testing.T) {
	ctx := context.Background()
	e, h := newHosts(t)
	key := testkit.Signer(t)
	tok := token(t, h, "db9", map[string]string{"env": "prod"})
	got, err := h.Join(ctx, "10.0.0.5", tok, hostKeyLine(key))
	if err != nil {
		t.Fatal(err)
	}
	c := got.Certificate
	if c.CertType != ssh.HostCert || !slices.Equal(c.ValidPrincipals, []string{"db9", "10.0.0.5"}) ||
		string(c.SignatureKey.Marshal()) != string(e.keys.Host.PublicKey().Marshal()) ||
		string(c.Key.Marshal()) != string(key.PublicKey().Marshal()) {
		t.Fatalf("certificate type %d principals %v signed by %s", c.CertType, c.ValidPrincipals, ssh.FingerprintSHA256(c.SignatureKey))
	}
	if life := time.Duration(c.ValidBefore-uint64(start.Unix())) * time.Second; life != grant.HostCertLifetime {
		t.Errorf("certificate valid for %s, want %s", life, grant.HostCertLifetime)
	}
	if !slices.Equal(got.Logins, []string{"dba", "root"}) {
		t.Errorf("logins %v, want [dba root] (prod roles and emergency)", got.Logins)
	}
	row, err := e.store.Host(ctx, "db9")
	if err != nil || row.CertSerial != c.Serial || row.EnrolledBy != "boss" || row.HostKey != hostKeyLine(key) || row.Labels["env"] != "prod" {
		t.Fatalf("host row %+v, %v", row, err)
	}
	if ph, ok := e.pol.Load().Host("db9"); !ok || ph.Address != "10.0.0.5:22" {
		t.Errorf("policy host db9 = %+v, %v; want it merged in", ph, ok)
	}
	cert, err := e.store.Certificate(ctx, c.Serial)
	if err != nil || cert.Kind != "host" || cert.Host != "db9" {
		t.Fatalf("certificate row %+v, %v", cert, err)
	}
	if evs := e.events(t, audit.EventFilter{Type: grant.EventHostJoined}); len(evs) != 1 || evs[0].Serial != c.Serial {
		t.Errorf("host.joined events %+v", evs)
	}
	if evs := e.events(t, audit.EventFilter{Type: "host_cert.issued"}); len(evs) != 1 || evs[0].Code != "join" {
		t.Errorf("host_cert.issued events %+v, want one with code join", evs)
	}
	e.verifyChain(t)
}

// TestJoinRefusesToken: an unknown, used or expired token is one code, the
// message saying which, and each refusal is recorded.
func TestJoinRefusesToken(t *testing.T) {
	tests := []struct {
		name, want string
		host       string // the host the refusal's record names
		token      func(t *testing.T, e *env, h *grant.Hosts) string
	}{
		{name: "unknown", want: "unknown", token: func(*testing.T, *env, *grant.Hosts) string { return "jhj_" + strings.Repeat("A", 43) }},
		{name: "used", want: "already used", host: "db9", token: func(t *testing.T, _ *env, h *grant.Hosts) string {
			tok := token(t, h, "db9", nil)
			if _, err := h.Join(context.Background(), "", tok, hostKeyLine(testkit.Signer(t))); err != nil {
				t.Fatal(err)
			}
			return tok
		}},
		{name: "expired", want: "expired", host: "db9", token: func(t *testing.T, e *env, h *grant.Hosts) string {
			tok := token(t, h, "db9", nil)
			e.clock.Advance(grant.DefaultJoinTokenTTL)
			return tok
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, h := newHosts(t)
			tok := tc.token(t, e, h)
			_, err := h.Join(context.Background(), "10.0.0.9", tok, hostKeyLine(testkit.Signer(t)))
			wantError(t, err, grant.KindUnauthenticated, grant.CodeJoinTokenInvalid)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if evs := e.events(t, audit.EventFilter{Type: grant.EventHostJoinFailed}); len(evs) != 1 || evs[0].Code != grant.CodeJoinTokenInvalid || evs[0].Host != tc.host {
				t.Errorf("host.join_failed events %+v, want one naming host %q", evs, tc.host)
			}
		})
	}
}

// TestJoinRaceOneToken: joins racing with one token give exactly one host
// and one host certificate.
func TestJoinRaceOneToken(t *testing.T) {
	ctx := context.Background()
	e, h := newHosts(t)
	tok := token(t, h, "db9", nil)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		key := hostKeyLine(testkit.Signer(t))
		wg.Go(func() { _, errs[i] = h.Join(ctx, "", tok, key) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantError(t, err, grant.KindUnauthenticated, grant.CodeJoinTokenInvalid)
	}
	if ok != 1 {
		t.Fatalf("%d joins succeeded with one token, want 1", ok)
	}
	if rows := e.certRows(t, audit.CertificateFilter{Kind: "host"}); len(rows) != 1 {
		t.Errorf("%d host certificates recorded, want 1", len(rows))
	}
}

// TestJoinHostKeyChanged: a host enrolled with one key may join again with
// it and a fresh token, but not with another key.
func TestJoinHostKeyChanged(t *testing.T) {
	ctx := context.Background()
	e, h := newHosts(t)
	key := hostKeyLine(testkit.Signer(t))
	if _, err := h.Join(ctx, "", token(t, h, "db9", nil), key); err != nil {
		t.Fatal(err)
	}
	_, err := h.Join(ctx, "", token(t, h, "db9", nil), hostKeyLine(testkit.Signer(t)))
	wantError(t, err, grant.KindConflict, grant.CodeHostKeyChanged)
	if row, _ := e.store.Host(ctx, "db9"); row.HostKey != key {
		t.Errorf("host key changed to %q by a refused join", row.HostKey)
	}
	e.clock.Advance(time.Hour)
	if _, err := h.Join(ctx, "", token(t, h, "db9", nil), key); err != nil {
		t.Errorf("re-join with the same key: %v", err)
	}
	if row, _ := e.store.Host(ctx, "db9"); !row.EnrolledAt.Equal(start) || !row.LastSeen.Equal(start.Add(time.Hour)) {
		t.Errorf("after a re-join enrolled at %s, last seen %s; want the first enrolment kept and seen now", row.EnrolledAt, row.LastSeen)
	}
}

// renewal signs a challenge for name with key.
func renewal(t *testing.T, h *grant.Hosts, name string, key ssh.Signer) (nonce, sig string) {
	t.Helper()
	nonce, _, err := h.RenewChallenge(context.Background(), "10.0.0.9", name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := key.Sign(nil, api.HostRenewMessage(name, nonce, testFingerprint))
	if err != nil {
		t.Fatal(err)
	}
	return nonce, base64.StdEncoding.EncodeToString(ssh.Marshal(s))
}

func TestRenew(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		run      func(t *testing.T, e *env, h *grant.Hosts, key ssh.Signer) error
		wantKind grant.Kind
		wantCode string
	}{
		{name: "ok", run: func(t *testing.T, e *env, h *grant.Hosts, key ssh.Signer) error {
			e.clock.Advance(24 * time.Hour)
			nonce, sig := renewal(t, h, "db9", key)
			got, err := h.Renew(ctx, "", "db9", nonce, sig)
			if err == nil {
				row, _ := e.store.Host(ctx, "db9")
				if row.CertSerial != got.Certificate.Serial || !row.LastSeen.Equal(e.clock.Now()) {
					t.Errorf("row after renewal %+v, want serial %d", row, got.Certificate.Serial)
				}
				if evs := e.events(t, audit.EventFilter{Type: grant.EventHostCertRenewed}); len(evs) != 1 {
					t.Errorf("%d host_cert.renewed events, want 1", len(evs))
				}
			}
			return err
		}},
		{name: "wrong signature", wantKind: grant.KindUnauthenticated, wantCode: grant.CodeBadSignature,
			run: func(t *testing.T, _ *env, h *grant.Hosts, _ ssh.Signer) error {
				nonce, sig := renewal(t, h, "db9", testkit.Signer(t))
				_, err := h.Renew(ctx, "", "db9", nonce, sig)
				return err
			}},
		{name: "replayed nonce", wantKind: grant.KindUnauthenticated, wantCode: grant.CodeBadChallenge,
			run: func(t *testing.T, _ *env, h *grant.Hosts, key ssh.Signer) error {
				nonce, sig := renewal(t, h, "db9", key)
				if _, err := h.Renew(ctx, "", "db9", nonce, sig); err != nil {
					t.Fatal(err)
				}
				_, err := h.Renew(ctx, "", "db9", nonce, sig)
				return err
			}},
		{name: "nonce of another host", wantKind: grant.KindUnauthenticated, wantCode: grant.CodeBadChallenge,
			run: func(t *testing.T, _ *env, h *grant.Hosts, key ssh.Signer) error {
				nonce, _, _ := h.RenewChallenge(ctx, "10.0.0.9", "web7")
				s, _ := key.Sign(nil, api.HostRenewMessage("db9", nonce, testFingerprint))
				_, err := h.Renew(ctx, "", "db9", nonce, base64.StdEncoding.EncodeToString(ssh.Marshal(s)))
				return err
			}},
		{name: "expired nonce", wantKind: grant.KindUnauthenticated, wantCode: grant.CodeBadChallenge,
			run: func(t *testing.T, e *env, h *grant.Hosts, key ssh.Signer) error {
				nonce, sig := renewal(t, h, "db9", key)
				e.clock.Advance(3 * time.Minute)
				_, err := h.Renew(ctx, "", "db9", nonce, sig)
				return err
			}},
		{name: "removed host", wantKind: grant.KindGone, wantCode: grant.CodeHostRemoved,
			run: func(t *testing.T, _ *env, h *grant.Hosts, key ssh.Signer) error {
				if err := h.Remove(ctx, boss, "db9", "decommissioned"); err != nil {
					t.Fatal(err)
				}
				_, _, err := h.RenewChallenge(ctx, "10.0.0.9", "db9")
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, h := newHosts(t)
			key := testkit.Signer(t)
			if _, err := h.Join(ctx, "", token(t, h, "db9", map[string]string{"env": "prod"}), hostKeyLine(key)); err != nil {
				t.Fatal(err)
			}
			err := tc.run(t, e, h, key)
			if tc.wantKind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantError(t, err, tc.wantKind, tc.wantCode)
			if evs := e.events(t, audit.EventFilter{Type: grant.EventHostRenewFailed}); len(evs) == 0 || evs[len(evs)-1].Code != tc.wantCode {
				t.Errorf("host.renew_failed events %+v, want the last with code %s", evs, tc.wantCode)
			}
		})
	}
}

// TestRemoveCascades: removing a host revokes its host certificate and the
// unexpired user certificates for it (and their target certificates),
// takes it out of the policy and lists its key as @revoked.
func TestRemoveCascades(t *testing.T) {
	ctx := context.Background()
	e, h := newHosts(t)
	key := testkit.Signer(t)
	joined, err := h.Join(ctx, "", token(t, h, "web9", map[string]string{"env": "staging"}), hostKeyLine(key))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Create(ctx, alice, e.request("web9", "deploy", "deploy release 42"))
	if err != nil || res.Certificate == nil {
		t.Fatalf("request deploy@web9: %v", err)
	}
	other, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 42"))
	if err != nil {
		t.Fatal(err)
	}
	target, err := e.svc.MintTargetCert(ctx, grant.TargetCertRequest{RequestID: res.Request.ID, SessionID: "ses_1", User: "alice", Login: "deploy",
		Host: "web9", UserSerial: res.Certificate.Serial, UserCert: res.Certificate, ValidBefore: time.Unix(int64(res.Certificate.ValidBefore), 0),
		Key: testkit.Signer(t).PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, h.Remove(ctx, boss, "web9", ""), grant.KindInvalid, grant.CodeReasonMissing)
	wantError(t, h.Remove(ctx, boss, "nosuch", "gone"), grant.KindNotFound, grant.CodeHostNotEnrolled)
	if err := h.Remove(ctx, boss, "web9", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []uint64{joined.Certificate.Serial, res.Certificate.Serial, target.Serial} {
		if c, err := e.store.Certificate(ctx, serial); err != nil || c.RevokedAt.IsZero() {
			t.Errorf("certificate %d (%s) not revoked: %v", serial, c.Kind, err)
		}
	}
	if c, _ := e.store.Certificate(ctx, other.Certificate.Serial); !c.RevokedAt.IsZero() {
		t.Errorf("certificate of another host revoked")
	}
	if _, ok := e.pol.Load().Host("web9"); ok {
		t.Error("removed host still in the policy")
	}
	kh, err := h.KnownHosts(ctx)
	if err != nil || !strings.Contains(kh, "@revoked * "+hostKeyLine(key)+"\n") || !strings.HasPrefix(kh, "@cert-authority * ") {
		t.Errorf("known_hosts %q, %v", kh, err)
	}
	if evs := e.events(t, audit.EventFilter{Type: grant.EventHostRemoved}); len(evs) != 1 || evs[0].Data["revoked"] != "2" {
		t.Errorf("host.removed events %+v, want one revoking 2 (host and user; the target one cascades)", evs)
	}
	wantError(t, h.Remove(ctx, boss, "web9", "again"), grant.KindGone, grant.CodeHostRemoved)
	e.verifyChain(t)
}

// TestHostsList: enrolled hosts and policy-only ones, with their source;
// expiring keeps enrolled hosts near the end of their certificate.
func TestHostsList(t *testing.T) {
	ctx := context.Background()
	e, h := newHosts(t)
	if _, err := h.Join(ctx, "", token(t, h, "web1", map[string]string{"env": "staging"}), hostKeyLine(testkit.Signer(t))); err != nil {
		t.Fatal(err)
	}
	all, err := h.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range all {
		got = append(got, v.Name+":"+map[bool]string{true: "policy", false: "store"}[v.FromPolicy])
	}
	if want := []string{"db1:policy", "web1:store"}; !slices.Equal(got, want) {
		t.Errorf("list %v, want %v (the store's web1 replaces the file's)", got, want)
	}
	if soon, _ := h.List(ctx, 72*time.Hour); len(soon) != 0 {
		t.Errorf("expiring within 72h: %d hosts, want none", len(soon))
	}
	e.clock.Advance(grant.HostCertLifetime - 48*time.Hour)
	if soon, _ := h.List(ctx, 72*time.Hour); len(soon) != 1 || soon[0].Name != "web1" {
		t.Errorf("expiring within 72h: %+v, want web1", soon)
	}
}

// TestTokenRefusesBastionNames: the host CA signs the bastion's certificate
// too, so a target enrolled under one of its names (the alias, a public
// name, the public address) could pass for the bastion; no token is made.
func TestTokenRefusesBastionNames(t *testing.T) {
	_, h := newHosts(t)
	tests := []struct{ name, address string }{
		{name: "jitssh-bastion", address: "10.0.0.9:22"},
		{name: "bastion.example.com", address: "10.0.0.9:22"},
		{name: "app1", address: "bastion.example.com:22"},
		{name: "app1", address: "10.0.0.1:22"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" at "+tt.address, func(t *testing.T) {
			_, err := h.CreateToken(context.Background(), boss, grant.HostTokenSpec{Name: tt.name, Address: tt.address})
			if grant.KindOf(err) != grant.KindInvalid || !strings.Contains(err.Error(), "names the bastion") {
				t.Errorf("CreateToken(%s, %s) = %v, want refused as a name of the bastion", tt.name, tt.address, err)
			}
		})
	}
	if _, err := h.CreateToken(context.Background(), boss, grant.HostTokenSpec{Name: "app1", Address: "10.0.0.9:22"}); err != nil {
		t.Errorf("an ordinary host: %v", err)
	}
}
