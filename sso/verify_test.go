package sso

import (
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
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": ti.srv.URL, "authorization_endpoint": ti.srv.URL + "/auth",
			"token_endpoint": ti.srv.URL + "/token", "device_authorization_endpoint": ti.srv.URL + "/device", "jwks_uri": ti.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwks.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ti.key.PublicKey, KeyID: ti.kid, Algorithm: "RS256", Use: "sig"}}})
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
	rp, err := New(cfg, Options{Clock: func() time.Time { return now }, RefetchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rp.Close)
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
