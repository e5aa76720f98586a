package sso

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testIssuer serves discovery and keys over TLS on 127.0.0.1 and signs
// ID tokens, good or forged, with the keys it holds.
type testIssuer struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	kid    string
	jwks   atomic.Int32 // key set fetches
	caFile string
	// failJWKS makes the key set answer 500; jwkAlg and jwkUse are the
	// published key's alg and use (default RS256, sig).
	failJWKS       atomic.Bool
	httpToken      atomic.Bool // discovery names an http token endpoint
	discoveries    atomic.Int32
	jwkAlg, jwkUse atomic.Value
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIssuer{key: key, kid: "k1"}
	mux := http.NewServeMux()
	ti.srv = httptest.NewTLSServer(mux)
	t.Cleanup(ti.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discoveries.Add(1)
		token := ti.srv.URL + "/token"
		if ti.httpToken.Load() {
			token = strings.Replace(token, "https://", "http://", 1)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": ti.srv.URL, "authorization_endpoint": ti.srv.URL + "/auth",
			"token_endpoint": token, "device_authorization_endpoint": ti.srv.URL + "/device", "jwks_uri": ti.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwks.Add(1)
		if ti.failJWKS.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		alg, _ := ti.jwkAlg.Load().(string)
		use, _ := ti.jwkUse.Load().(string)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ti.key.PublicKey, KeyID: ti.kid, Algorithm: cmp.Or(alg, "RS256"), Use: cmp.Or(use, "sig")}}})
	})
	ti.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ti.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ti.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ti
}

func (ti *testIssuer) sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func unsignedToken(claims map[string]any) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims)
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

func testRP(t *testing.T, ti *testIssuer, now time.Time) (*RP, *provider, *discovered) {
	t.Helper()
	cfg := &Config{Providers: []ProviderConfig{{Name: "corp", Display: "Corp", Issuer: ti.srv.URL, ClientID: "jitssh", CAFile: ti.caFile,
		Scopes: []string{"openid"}, UserClaim: "preferred_username", GroupsClaim: "groups", Algorithms: []string{"RS256", "ES256"}}}}
	rp, err := New(cfg, Options{Store: testStore(t), Clock: func() time.Time { return now }, RefetchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := rp.providers[0]
	d, err := p.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rp, p, d
}

func TestVerifyIDToken(t *testing.T) {
	ti := newTestIssuer(t)
	now := time.Now().Truncate(time.Second)
	_, p, d := testRP(t, ti, now)
	good := func() map[string]any {
		return map[string]any{"iss": ti.srv.URL, "sub": "u-1", "aud": "jitssh", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
			"nonce": "n-1", "preferred_username": "alice", "groups": []string{"eng", "ops"}}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs := func(c map[string]any) string { return ti.sign(t, jose.RS256, ti.key, ti.kid, c) }
	cases := []struct {
		name, token, code, reason string
	}{
		{"good", rs(good()), "", ""},
		{"hs256", ti.sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), ti.kid, good()), CodeTokenInvalid, ReasonAlgorithm},
		{"none", unsignedToken(good()), CodeTokenInvalid, ReasonAlgorithm},
		{"rs384 not allowed", ti.sign(t, jose.RS384, ti.key, ti.kid, good()), CodeTokenInvalid, ReasonAlgorithm},
		{"other key same kid", ti.sign(t, jose.RS256, other, ti.kid, good()), CodeTokenInvalid, ReasonSignature},
		{"wrong issuer", rs(with("iss", "https://evil.example")), CodeTokenInvalid, ReasonIssuer},
		{"wrong audience", rs(with("aud", "someone-else")), CodeTokenInvalid, ReasonAudience},
		{"several audiences no azp", rs(with("aud", []string{"jitssh", "other"})), CodeTokenInvalid, ReasonAZP},
		{"azp mismatch", rs(with("azp", "other")), CodeTokenInvalid, ReasonAZP},
		{"several audiences azp ok", rs(func() map[string]any { c := with("aud", []string{"jitssh", "other"}); c["azp"] = "jitssh"; return c }()), "", ""},
		{"expired", rs(with("exp", now.Add(-time.Minute).Unix())), CodeTokenInvalid, ReasonExpired},
		{"expired within skew", rs(with("exp", now.Add(-Skew/2).Unix())), "", ""},
		{"no exp", rs(with("exp", nil)), CodeTokenInvalid, ReasonMalformed},
		{"nbf future", rs(with("nbf", now.Add(2*time.Minute).Unix())), CodeTokenInvalid, ReasonNotYet},
		{"nbf within skew", rs(with("nbf", now.Add(Skew/2).Unix())), "", ""},
		{"bad nonce", rs(with("nonce", "n-2")), CodeTokenInvalid, ReasonNonce},
		{"no nonce", rs(with("nonce", nil)), CodeTokenInvalid, ReasonNonce},
		{"no user", rs(with("preferred_username", nil)), CodeNoUser, ""},
		{"bad user", rs(with("preferred_username", "Alice Smith")), CodeNoUser, ""},
		{"upper case user", rs(with("preferred_username", "Alice")), CodeNoUser, ""},
		{"cyrillic look-alike", rs(with("preferred_username", "\u0430lice")), CodeNoUser, ""},
		{"leading dot", rs(with("preferred_username", ".alice")), CodeNoUser, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := p.verify(context.Background(), d, tc.token, "n-1")
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.User != "alice" || id.Subject != "u-1" || len(id.Groups) != 2 {
					t.Fatalf("identity %+v", id)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Code != tc.code || se.Reason != tc.reason {
				t.Fatalf("got %v, want %s (%s)", err, tc.code, tc.reason)
			}
		})
	}
}

// TestUnknownKidRefetchRateLimited checks that a token naming an unknown
// kid fetches the keys once more, and that further unknown kids within the
// interval fetch nothing; after the interval, and after a rotation, the
// new key is found.
func TestUnknownKidRefetchRateLimited(t *testing.T) {
	ti := newTestIssuer(t)
	now := time.Now().Truncate(time.Second)
	clock := now
	_, p, d := testRP(t, ti, now)
	d.keys.now = func() time.Time { return clock }
	claims := map[string]any{"iss": ti.srv.URL, "sub": "u-1", "aud": "jitssh", "exp": now.Add(time.Hour).Unix(), "preferred_username": "alice"}
	if _, err := p.verify(context.Background(), d, ti.sign(t, jose.RS256, ti.key, ti.kid, claims), ""); err != nil {
		t.Fatal(err)
	}
	if got := ti.jwks.Load(); got != 1 {
		t.Fatalf("%d key fetches after the first token, want 1", got)
	}
	for i := range 5 {
		_, err := p.verify(context.Background(), d, ti.sign(t, jose.RS256, ti.key, "forged", claims), "")
		var se *Error
		if !errors.As(err, &se) || se.Reason != ReasonUnknownKey {
			t.Fatalf("token %d with an unknown kid: %v", i, err)
		}
	}
	// The first fetch was at the first token, at the same clock reading,
	// so none of the five may fetch again.
	if got := ti.jwks.Load(); got != 1 {
		t.Fatalf("%d key fetches after 5 unknown kids within the interval, want 1", got)
	}
	// The provider rotates: after the interval one token refetches and
	// verifies with the new key.
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	ti.key, ti.kid = rotated, "k2"
	clock = clock.Add(2 * time.Minute)
	if _, err := p.verify(context.Background(), d, ti.sign(t, jose.RS256, rotated, "k2", claims), ""); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if _, err := p.verify(context.Background(), d, ti.sign(t, jose.RS256, rotated, "nope", claims), ""); err == nil {
		t.Fatal("unknown kid accepted")
	}
	if got := ti.jwks.Load(); got != 2 {
		t.Fatalf("%d key fetches, want 2 (one at the rotation, none for the next unknown kid)", got)
	}
}

// FuzzClaims feeds ID token payloads (signed, so from the provider, but
// from outside all the same) to the claim checks: they must refuse or
// accept without panicking, and accept only a payload that names this
// issuer, audience and nonce with a future expiry.
func FuzzClaims(f *testing.F) {
	f.Add([]byte(`{"iss":"https://idp.example","sub":"u","aud":"jitssh","exp":4102444800,"nonce":"n","preferred_username":"alice","groups":["g"]}`))
	f.Add([]byte(`{"iss":"https://idp.example","sub":"u","aud":["jitssh","x"],"azp":"jitssh","exp":1e10,"nbf":"soon","nonce":"n"}`))
	f.Add([]byte(`{"aud":7,"exp":-1}`))
	p := &provider{cfg: ProviderConfig{Name: "corp", Issuer: "https://idp.example", ClientID: "jitssh", UserClaim: "preferred_username", GroupsClaim: "groups"},
		now: func() time.Time { return time.Unix(1767225600, 0) }}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c claims
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		if p.checkClaims(c, "n") != nil {
			return
		}
		if c.Issuer != p.cfg.Issuer || c.Nonce == nil || *c.Nonce != "n" || c.Subject == "" {
			t.Fatalf("accepted %s", payload)
		}
		var all map[string]any
		if json.Unmarshal(payload, &all) == nil {
			_, _ = p.identity(c.Subject, all, time.Time{})
		}
	})
}

// TestKeySetChecks checks the key set's own refusals: a failed first fetch
// is the provider's failure (also for the next logins within the
// interval), not an unknown kid; a token without kid is not verified with
// the one key when that key is for encryption; a key published for one
// algorithm does not verify another.
func TestKeySetChecks(t *testing.T) {
	claims := func(ti *testIssuer, now time.Time) map[string]any {
		return map[string]any{"iss": ti.srv.URL, "sub": "u-1", "aud": "jitssh", "exp": now.Add(time.Hour).Unix(), "preferred_username": "alice"}
	}
	now := time.Now().Truncate(time.Second)
	cases := []struct {
		name   string
		setup  func(*testIssuer)
		kid    string
		code   string
		reason string
	}{
		{"first fetch fails", func(ti *testIssuer) { ti.failJWKS.Store(true) }, "k1", CodeProviderFailed, ""},
		{"no kid, encryption key", func(ti *testIssuer) { ti.jwkUse.Store("enc") }, "", CodeTokenInvalid, ReasonUnknownKey},
		{"no kid, signing key", func(*testIssuer) {}, "", "", ""},
		{"key for another algorithm", func(ti *testIssuer) { ti.jwkAlg.Store("PS256") }, "k1", CodeTokenInvalid, ReasonAlgorithm},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t)
			tc.setup(ti)
			_, p, d := testRP(t, ti, now)
			for i := range 2 {
				_, err := p.verify(context.Background(), d, ti.sign(t, jose.RS256, ti.key, tc.kid, claims(ti, now)), "")
				if tc.code == "" {
					if err != nil {
						t.Fatalf("try %d: %v", i, err)
					}
					continue
				}
				var se *Error
				if !errors.As(err, &se) || se.Code != tc.code || se.Reason != tc.reason {
					t.Fatalf("try %d: got %v, want %s (%s)", i, err, tc.code, tc.reason)
				}
			}
		})
	}
}

// TestDiscoveryChecks checks that discovery naming a plain-http endpoint
// is refused, and that a good discovery is read again after
// rediscoverEvery (keeping the last good one while the provider fails).
func TestDiscoveryChecks(t *testing.T) {
	ti := newTestIssuer(t)
	ti.httpToken.Store(true)
	cfg := &Config{Providers: []ProviderConfig{{Name: "corp", Issuer: ti.srv.URL, ClientID: "jitssh", CAFile: ti.caFile,
		Scopes: []string{"openid"}, UserClaim: "preferred_username", GroupsClaim: "groups", Algorithms: []string{"RS256"}}}}
	now := time.Now()
	rp, err := New(cfg, Options{Store: testStore(t), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p := rp.providers[0]
	if _, err := p.get(context.Background()); err == nil || !strings.Contains(errors.Unwrap(err).Error(), "token_endpoint") {
		t.Fatalf("discovery with an http token endpoint: %v", err)
	}
	ti.httpToken.Store(false)
	now = now.Add(rediscoverAfter)
	d, err := p.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := ti.discoveries.Load()
	if d2, _ := p.get(context.Background()); d2 != d || ti.discoveries.Load() != n {
		t.Fatal("a fresh discovery was read again")
	}
	now = now.Add(rediscoverEvery)
	ti.httpToken.Store(true)
	if d3, err := p.get(context.Background()); err != nil || d3 != d || ti.discoveries.Load() != n+1 {
		t.Fatalf("after an hour: %v, same %v, discoveries %d (want %d): a failed rediscovery keeps the last good one", err, d3 == d, ti.discoveries.Load(), n+1)
	}
	ti.httpToken.Store(false)
	now = now.Add(rediscoverAfter)
	if d4, err := p.get(context.Background()); err != nil || d4 == d {
		t.Fatalf("rediscovery after the failure: %v, same %v", err, d4 == d)
	}
}
