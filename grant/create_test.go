package grant_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/issuance/issuancetest"
)

func TestNewConfig(t *testing.T) {
	e := newEnv(t)
	pol := e.pol.Load
	tests := []struct {
		name    string
		cfg     grant.Config
		wantErr string
	}{
		{name: "complete", cfg: grant.Config{Policy: pol, Store: e.store, Keys: e.keys}},
		{name: "no policy", cfg: grant.Config{Store: e.store, Keys: e.keys}, wantErr: "Policy"},
		{name: "no store", cfg: grant.Config{Policy: pol, Keys: e.keys}, wantErr: "Store"},
		{name: "no keys", cfg: grant.Config{Policy: pol, Store: e.store}, wantErr: "Keys"},
		{name: "no user CA", cfg: grant.Config{Policy: pol, Store: e.store, Keys: &ca.Keys{Host: e.keys.Host, Target: e.keys.Target}}, wantErr: "Keys"},
		{name: "no target CA", cfg: grant.Config{Policy: pol, Store: e.store, Keys: &ca.Keys{User: e.keys.User, Host: e.keys.Host}}, wantErr: "Keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := grant.New(tt.cfg)
			switch {
			case tt.wantErr == "" && (err != nil || svc == nil):
				t.Fatalf("New: %v, want a service", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: error %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestCreateIssued(t *testing.T) {
	tests := []struct {
		name       string
		host       string
		login      string
		ttl        time.Duration
		wantRole   string
		wantTTL    time.Duration
		wantExt    []string
		wantSource string
	}{
		{name: "role default ttl with extras", host: "web1", login: "deploy", wantRole: "staging", wantTTL: 10 * time.Minute,
			wantExt: []string{"permit-port-forwarding", "permit-pty"}, wantSource: "10.0.0.0/8,192.168.1.0/24"},
		{name: "requested ttl", host: "web1", login: "deploy", ttl: 45 * time.Minute, wantRole: "staging", wantTTL: 45 * time.Minute,
			wantExt: []string{"permit-port-forwarding", "permit-pty"}, wantSource: "10.0.0.0/8,192.168.1.0/24"},
		{name: "plain role gets only permit-pty", host: "db1", login: "reader", wantRole: "prod-reader", wantTTL: 5 * time.Minute,
			wantExt: []string{"permit-pty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.clock.Advance(1500 * time.Millisecond) // a fraction of a second is not carried into the certificate
			now := start.Add(time.Second)
			req := e.request(tt.host, tt.login, "deploy release 42")
			req.TTL = tt.ttl
			res, err := e.svc.Create(context.Background(), grant.Caller{User: "alice", ClientAddr: "127.0.0.1:4242"}, req)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			cert, r := res.Certificate, res.Request
			if cert == nil {
				t.Fatal("Create returned no certificate")
			}
			principal := tt.login + "@" + tt.host
			if !slices.Equal(cert.ValidPrincipals, []string{principal}) {
				t.Errorf("principals %q, want exactly [%q]", cert.ValidPrincipals, principal)
			}
			if cert.CertType != ssh.UserCert {
				t.Errorf("cert type %d, want user", cert.CertType)
			}
			if got, want := time.Unix(int64(cert.ValidAfter), 0).UTC(), now.Add(-time.Minute); !got.Equal(want) {
				t.Errorf("valid after %s, want %s", got, want)
			}
			if got, want := time.Unix(int64(cert.ValidBefore), 0).UTC(), now.Add(tt.wantTTL); !got.Equal(want) {
				t.Errorf("valid before %s, want %s", got, want)
			}
			if want := "jit:" + r.ID + ":alice"; cert.KeyId != want {
				t.Errorf("key id %q, want %q", cert.KeyId, want)
			}
			if string(cert.Key.Marshal()) != string(e.key.Marshal()) {
				t.Error("certificate is for another key")
			}
			if got := slices.Sorted(maps.Keys(cert.Extensions)); !slices.Equal(got, tt.wantExt) {
				t.Errorf("extensions %q, want %q", got, tt.wantExt)
			}
			wantCrit := map[string]string{}
			if tt.wantSource != "" {
				wantCrit["source-address"] = tt.wantSource
			}
			if !maps.Equal(cert.CriticalOptions, wantCrit) && (len(cert.CriticalOptions) != 0 || len(wantCrit) != 0) {
				t.Errorf("critical options %v, want %v", cert.CriticalOptions, wantCrit)
			}
			checkCert(t, cert, e.keys.User.PublicKey(), principal, now)

			if cert.Serial == 0 {
				t.Fatal("serial is 0")
			}
			if r.State != grant.StateIssued || r.Role != tt.wantRole || r.Serial != cert.Serial || r.TTL != tt.wantTTL {
				t.Errorf("result request state %q role %q serial %d ttl %s, want issued %q %d %s", r.State, r.Role, r.Serial, r.TTL, tt.wantRole, cert.Serial, tt.wantTTL)
			}
			stored := e.stored(t, r.ID)
			if stored.State != grant.StateIssued || stored.Serial != cert.Serial || stored.User != "alice" || stored.ClientAddr != "127.0.0.1:4242" {
				t.Errorf("stored request %+v, want issued with serial %d for alice from 127.0.0.1:4242", stored, cert.Serial)
			}
			row, err := e.store.Certificate(context.Background(), cert.Serial)
			if err != nil {
				t.Fatalf("certificate row for serial %d: %v", cert.Serial, err)
			}
			if row.Kind != "user" || row.RequestID != r.ID || row.KeyID != cert.KeyId || !slices.Equal(row.Principals, cert.ValidPrincipals) ||
				row.KeyFingerprint != ssh.FingerprintSHA256(e.key) || uint64(row.ValidBefore.Unix()) != cert.ValidBefore {
				t.Errorf("certificate row %+v does not describe the certificate", row)
			}
			if got, want := e.eventTypes(t, r.ID), []string{"request.created", "cert.issued"}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
			issued := e.events(t, audit.EventFilter{Type: "cert.issued"})
			if len(issued) != 1 || issued[0].Serial != cert.Serial || issued[0].Data["principals"] != principal || issued[0].Data["break_glass"] != "" {
				t.Errorf("cert.issued events %+v, want one for serial %d naming %s, not break-glass", issued, cert.Serial, principal)
			}
		})
	}
}

// withProbe has the user CA key signed through p, which notes what the
// store holds when it is asked to sign.
func withProbe(p *issuancetest.Probe) envOption {
	return func(c *grant.Config) {
		p.Store = c.Store
		p.Signer = c.Keys.User
		c.Keys = &ca.Keys{User: p, Host: c.Keys.Host, Target: c.Keys.Target}
	}
}

// The certificate row and the cert.issued event are committed before the CA
// signs: nothing is signed that the record does not hold.
func TestCreateRecordsBeforeSigning(t *testing.T) {
	tests := []struct {
		name   string
		redeem bool
	}{
		{name: "issued at once"},
		{name: "redeemed after approval", redeem: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &issuancetest.Probe{}
			e := newEnv(t, withProbe(p))
			var cert *ssh.Certificate
			if tt.redeem {
				id := e.approved(t)
				res, err := e.svc.Redeem(context.Background(), grant.Caller{User: "alice"}, id)
				if err != nil {
					t.Fatalf("Redeem: %v", err)
				}
				cert = res.Certificate
			} else {
				res, err := e.svc.Create(context.Background(), grant.Caller{User: "alice"}, e.request("web1", "deploy", "deploy release 42"))
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				cert = res.Certificate
			}
			if p.Calls() != 1 {
				t.Fatalf("CA signed %d times, want 1", p.Calls())
			}
			p.RecordedBeforeSigning(t, cert.Serial, "user", "cert.issued")
		})
	}
}

// A store that cannot record means no certificate and no signature.
func TestCreateStoreUnavailable(t *testing.T) {
	tests := []struct {
		name  string
		login string
		host  string
	}{
		{name: "allowed outright", host: "web1", login: "deploy"},
		{name: "needs approval", host: "db1", login: "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &issuancetest.Probe{}
			e := newEnv(t, withProbe(p))
			if err := e.store.Close(); err != nil {
				t.Fatal(err)
			}
			res, err := e.svc.Create(context.Background(), grant.Caller{User: "alice"}, e.request(tt.host, tt.login, "deploy release 42"))
			wantError(t, err, grant.KindUnavailable, grant.CodeAuditUnavailable)
			if res.Certificate != nil {
				t.Error("a certificate was returned although nothing was recorded")
			}
			if p.Calls() != 0 {
				t.Errorf("CA signed %d times with the store closed", p.Calls())
			}
		})
	}
}

func TestCreateRandomSourceFails(t *testing.T) {
	p := &issuancetest.Probe{}
	e := newEnv(t, withProbe(p), func(c *grant.Config) { c.Rand = failingReader{} })
	res, err := e.svc.Create(context.Background(), grant.Caller{User: "alice"}, e.request("web1", "deploy", "deploy release 42"))
	if err == nil || res.Certificate != nil {
		t.Fatalf("Create with a failing random source: %v, certificate %v; want an error and none", err, res.Certificate != nil)
	}
	if p.Calls() != 0 {
		t.Errorf("CA signed %d times", p.Calls())
	}
}

func TestCreateDenied(t *testing.T) {
	tests := []struct {
		name     string
		user     string
		edit     func(*grant.CreateRequest)
		wantKind grant.Kind
		wantCode string
	}{
		{name: "unknown user", user: "mallory", wantKind: grant.KindDenied, wantCode: "unknown_user"},
		{name: "unknown host", user: "alice", edit: func(r *grant.CreateRequest) { r.Host = "db9" }, wantKind: grant.KindDenied, wantCode: "unknown_host"},
		{name: "user in no role", user: "dan", wantKind: grant.KindDenied, wantCode: "no_role"},
		{name: "admin", user: "boss", wantKind: grant.KindDenied, wantCode: "admin_access_forbidden"},
		{name: "login not allowed", user: "alice", edit: func(r *grant.CreateRequest) { r.Login = "admin" }, wantKind: grant.KindDenied, wantCode: "login_not_allowed"},
		{name: "ttl too long", user: "alice", edit: func(r *grant.CreateRequest) { r.TTL = 2 * time.Hour }, wantKind: grant.KindDenied, wantCode: "ttl_too_long"},
		{name: "ttl negative", user: "alice", edit: func(r *grant.CreateRequest) { r.TTL = -time.Minute }, wantKind: grant.KindInvalid, wantCode: "ttl_invalid"},
		{name: "justification too short", user: "alice", edit: func(r *grant.CreateRequest) { r.Justification = "x" }, wantKind: grant.KindDenied, wantCode: "justification_too_short"},
		{name: "justification missing", user: "alice", edit: func(r *grant.CreateRequest) { r.Justification = "  " }, wantKind: grant.KindInvalid, wantCode: "justification_missing"},
		{name: "justification with newline", user: "alice", edit: func(r *grant.CreateRequest) { r.Justification = "deploy\nforged line" }, wantKind: grant.KindInvalid, wantCode: "justification_invalid"},
		{name: "invalid login", user: "alice", edit: func(r *grant.CreateRequest) { r.Login = "root,deploy" }, wantKind: grant.KindInvalid, wantCode: "invalid_login"},
		{name: "wildcard host", user: "alice", edit: func(r *grant.CreateRequest) { r.Host = "*" }, wantKind: grant.KindInvalid, wantCode: "invalid_host"},
		{name: "break glass on a role without it", user: "alice", edit: func(r *grant.CreateRequest) { r.BreakGlass = true }, wantKind: grant.KindDenied, wantCode: "break_glass_not_allowed"},
		{name: "missing key", user: "alice", edit: func(r *grant.CreateRequest) { r.PublicKey = "" }, wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidPublicKey},
		{name: "malformed key", user: "alice", edit: func(r *grant.CreateRequest) { r.PublicKey = "ssh-ed25519 AAAA" }, wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidPublicKey},
		{name: "oversized key", user: "alice", edit: func(r *grant.CreateRequest) { r.PublicKey += strings.Repeat("x", 9000) }, wantKind: grant.KindInvalid, wantCode: grant.CodeInvalidPublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			req := e.request("web1", "deploy", "deploy release 42")
			if tt.edit != nil {
				tt.edit(&req)
			}
			res, err := e.svc.Create(context.Background(), grant.Caller{User: tt.user, ClientAddr: "127.0.0.1:1"}, req)
			wantError(t, err, tt.wantKind, tt.wantCode)
			if res.Certificate != nil || res.Request.ID != "" {
				t.Errorf("denied Create returned %+v", res)
			}
			evs := e.events(t, audit.EventFilter{Type: "request.denied"})
			if len(evs) != 1 || evs[0].Code != tt.wantCode || evs[0].Actor != tt.user || evs[0].User != tt.user || evs[0].ClientAddr != "127.0.0.1:1" {
				t.Fatalf("request.denied events %+v, want one by %s with code %s", evs, tt.user, tt.wantCode)
			}
			if req.BreakGlass && evs[0].Data["break_glass"] != "true" {
				t.Errorf("denied break-glass request not flagged: data %v", evs[0].Data)
			}
			if rows := e.certRows(t, audit.CertificateFilter{}); len(rows) != 0 {
				t.Errorf("%d certificate rows after a denial", len(rows))
			}
			if rs, err := e.store.Requests(context.Background(), audit.RequestFilter{}); err != nil || len(rs) != 0 {
				t.Errorf("requests after a denial: %v, %v", rs, err)
			}
		})
	}
}

// A refused request's host and login are audited, but not without bound,
// and cut between characters.
func TestCreateDeniedBoundsAuditedInput(t *testing.T) {
	tests := []struct {
		name string
		host string
	}{
		{name: "ascii", host: strings.Repeat("h", 5000)},
		{name: "multibyte across the cut", host: "h" + strings.Repeat("é", 2000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			req := e.request(tt.host, "deploy", "deploy release 42")
			_, err := e.svc.Create(context.Background(), grant.Caller{User: "alice"}, req)
			wantError(t, err, grant.KindInvalid, "invalid_host")
			evs := e.events(t, audit.EventFilter{Type: "request.denied"})
			if len(evs) != 1 {
				t.Fatalf("%d request.denied events, want 1", len(evs))
			}
			host := evs[0].Host
			if len(host) > 300 || !strings.HasSuffix(host, "...") || !strings.HasPrefix(tt.host, strings.TrimSuffix(host, "...")) {
				t.Errorf("denied event host is %d bytes (%q...), want a prefix of at most 300 bytes", len(host), host[:min(len(host), 20)])
			}
		})
	}
}

// If the CA cannot sign after the issuance is recorded, the trail says so
// and the recorded certificate is revoked; nothing leaves the service.
func TestSigningFails(t *testing.T) {
	e := newEnv(t, func(c *grant.Config) {
		keys := *c.Keys
		keys.User = &issuancetest.Probe{Signer: c.Keys.User, Store: c.Store, Fail: true}
		c.Keys = &keys
	})
	res, err := e.svc.Create(context.Background(), alice, e.request("web1", "deploy", "deploy release 42"))
	wantError(t, err, grant.KindUnavailable, grant.CodeSigningFailed)
	if res.Certificate != nil {
		t.Fatal("a certificate was returned")
	}
	rows := e.certRows(t, audit.CertificateFilter{})
	if len(rows) != 1 || rows[0].RevokedAt.IsZero() {
		t.Fatalf("certificate rows %+v, want the recorded one revoked", rows)
	}
	failed := e.events(t, audit.EventFilter{Type: "cert.failed"})
	if len(failed) != 1 || failed[0].Serial != rows[0].Serial || failed[0].Code != grant.CodeSigningFailed {
		t.Errorf("cert.failed events %+v, want one for serial %d", failed, rows[0].Serial)
	}
}

// scriptedReader hands out fixed chunks, one per read, to script ids and
// serials.
type scriptedReader struct {
	mu     sync.Mutex
	chunks [][]byte
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

// A serial that is already taken is drawn again, never issued twice.
func TestSerialCollisionDrawsAgain(t *testing.T) {
	serial := func(b byte) []byte { return []byte{0, 0, 0, 0, 0, 0, 0x10, b} }
	id := func(b byte) []byte { return []byte{b, b, b, b, b, b, b, b, b, b} }
	r := &scriptedReader{chunks: [][]byte{
		id(1), serial(1), // first request
		id(2), serial(1), serial(2), // second: collides, then a fresh serial
	}}
	e := newEnv(t, func(c *grant.Config) { c.Rand = r })
	ctx := context.Background()
	first, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 42"))
	if err != nil {
		t.Fatalf("first Create: %v", err)
	}
	second, err := e.svc.Create(ctx, alice, e.request("web1", "deploy", "deploy release 43"))
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if first.Certificate.Serial != 0x1001 || second.Certificate.Serial != 0x1002 {
		t.Errorf("serials %#x and %#x, want 0x1001 and 0x1002", first.Certificate.Serial, second.Certificate.Serial)
	}
	if got := e.stored(t, second.Request.ID).Serial; got != 0x1002 {
		t.Errorf("second request stored with serial %#x", got)
	}
	if rows := e.certRows(t, audit.CertificateFilter{}); len(rows) != 2 {
		t.Errorf("%d certificate rows, want 2", len(rows))
	}
}

// A refusal that cannot be audited is still a refusal, and says so.
func TestDenialWithStoreClosed(t *testing.T) {
	e := newEnv(t)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(context.Background(), alice, e.request("db9", "deploy", "deploy release 42"))
	wantError(t, err, grant.KindDenied, "unknown_host")
	if !errors.Is(err, audit.ErrClosed) {
		t.Errorf("error %v does not carry the audit failure", err)
	}
}

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantKind grant.Kind
		wantText string
	}{
		{name: "plain", err: &grant.Error{Kind: grant.KindDenied, Code: "host_not_allowed", Message: `host "db1" is not allowed`},
			wantKind: grant.KindDenied, wantText: `host_not_allowed: host "db1" is not allowed`},
		{name: "wrapped cause", err: &grant.Error{Kind: grant.KindUnavailable, Code: grant.CodeAuditUnavailable, Message: "audit store unavailable", Err: audit.ErrClosed},
			wantKind: grant.KindUnavailable, wantText: "audit_unavailable: audit store unavailable: audit: store closed"},
		{name: "wrapped by a caller", err: fmt.Errorf("api: %w", &grant.Error{Kind: grant.KindConflict, Code: grant.CodeNotPending, Message: "m"}),
			wantKind: grant.KindConflict, wantText: "api: not_pending: m"},
		{name: "not a grant error", err: io.EOF, wantKind: 0, wantText: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := grant.KindOf(tt.err); got != tt.wantKind {
				t.Errorf("KindOf = %v, want %v", got, tt.wantKind)
			}
			if got := tt.err.Error(); got != tt.wantText {
				t.Errorf("Error() = %q, want %q", got, tt.wantText)
			}
		})
	}
	names := map[grant.Kind]string{
		grant.KindInvalid: "invalid", grant.KindDenied: "denied", grant.KindForbidden: "forbidden",
		grant.KindNotFound: "not_found", grant.KindConflict: "conflict", grant.KindUnavailable: "unavailable", 0: "kind(0)",
	}
	for k, want := range names {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// Request ids start with the creation time, so that the audit store's
// indexes keyed by request id grow at their end; they still carry 80 random
// bits and sort in creation order whatever the random bits are.
func TestRequestIDsSortByCreation(t *testing.T) {
	e := newEnv(t)
	idPattern := regexp.MustCompile(`^req_[0-9a-v]{26}$`)
	tests := []struct {
		name    string
		advance time.Duration // clock step before the request
	}{
		{name: "first", advance: 0},
		{name: "one millisecond later", advance: time.Millisecond},
		{name: "same millisecond", advance: 0},
		{name: "one hour later", advance: time.Hour},
		{name: "years later", advance: 3 * 365 * 24 * time.Hour},
	}
	var prev string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			res, err := e.svc.Create(context.Background(), grant.Caller{User: "alice"}, e.request("db1", "reader", "deploy release 42"))
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			id := res.Request.ID
			if !idPattern.MatchString(id) {
				t.Errorf("id %q does not match %s", id, idPattern)
			}
			if id == prev {
				t.Errorf("id %q repeats the previous one", id)
			}
			if tt.advance > 0 && id <= prev {
				t.Errorf("id %q does not sort after the earlier %q", id, prev)
			}
			if tt.advance == 0 && prev != "" && id[:13] != prev[:13] { // "req_" and 45 of the 48 time bits
				t.Errorf("ids of the same millisecond %q and %q have different time parts", id, prev)
			}
			prev = id
		})
	}
}
