package sso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DefaultRefetchInterval is the least time between two fetches of a
// provider's keys: an ID token naming an unknown kid fetches them again
// (the provider rotated), but a stream of forged kids must not make jitd
// hammer the provider.
const DefaultRefetchInterval = time.Minute

// maxJWKSBytes bounds the key set document.
const maxJWKSBytes = 1 << 20

// keySet is an oidc.KeySet (go-oidc's RemoteKeySet refetches on every
// unknown kid, without a limit): it keeps the provider's keys and fetches
// them again for an unknown kid at most once per interval.
type keySet struct {
	url      string
	client   *http.Client
	algs     []jose.SignatureAlgorithm
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time
	lastErr   *Error // the last fetch's failure, nil after a good one
	fetches   int
}

// VerifySignature verifies jwt with the key its header names and returns
// the payload; a refusal is an *Error with CodeTokenInvalid.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, k.algs)
	if err != nil {
		return nil, invalid(ReasonAlgorithm, "id token is not signed with an allowed algorithm (%v): %v", k.algs, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid(ReasonMalformed, "id token has %d signatures, want 1", len(jws.Signatures))
	}
	kid := jws.Signatures[0].Header.KeyID
	key, err := k.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	// A key published for one algorithm verifies no other (RFC 7517
	// §4.4), so a key cannot be used with an algorithm its owner did not
	// mean.
	if alg := jws.Signatures[0].Header.Algorithm; key.Algorithm != "" && key.Algorithm != alg {
		return nil, invalid(ReasonAlgorithm, "id token is signed with %s, but key %q is published for %s", alg, kid, key.Algorithm)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalid(ReasonSignature, "id token signature does not verify with key %q", kid)
	}
	return payload, nil
}

// key returns the key named kid (any key when kid is empty and there is
// one), fetching the set once more if it is unknown and the last fetch is
// older than the interval.
func (k *keySet) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key := k.find(kid); key != nil {
		return key, nil
	}
	if !k.fetchedAt.IsZero() && k.now().Sub(k.fetchedAt) < k.interval {
		if k.lastErr != nil {
			// The keys could not be fetched: the provider failed, not
			// the token.
			return nil, k.lastErr
		}
		return nil, invalid(ReasonUnknownKey, "id token names key %q, which the provider does not publish (keys fetched again at most every %s)", kid, k.interval)
	}
	// The lock is held over the fetch on purpose: concurrent logins with an
	// unknown kid wait for one fetch instead of making several.
	if err := k.fetchLocked(ctx); err != nil {
		return nil, err
	}
	if key := k.find(kid); key != nil {
		return key, nil
	}
	return nil, invalid(ReasonUnknownKey, "id token names key %q, which the provider does not publish", kid)
}

func (k *keySet) find(kid string) *jose.JSONWebKey {
	if kid == "" && len(k.keys) == 1 && k.keys[0].Use != "enc" {
		return &k.keys[0]
	}
	for i := range k.keys {
		if kid != "" && k.keys[i].KeyID == kid && k.keys[i].Use != "enc" {
			return &k.keys[i]
		}
	}
	return nil
}

func (k *keySet) fetchLocked(ctx context.Context) error {
	k.fetchedAt = k.now()
	k.fetches++
	err := k.doFetchLocked(ctx)
	k.lastErr = nil
	if se, ok := err.(*Error); ok {
		k.lastErr = se
	} else if err != nil {
		k.lastErr = &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("fetch provider keys %s failed", k.url), Err: err}
	}
	if k.lastErr != nil {
		return k.lastErr
	}
	return nil
}

func (k *keySet) doFetchLocked(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("fetch provider keys %s: %w", k.url, err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("fetch provider keys %s failed", k.url), Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil || resp.StatusCode != http.StatusOK {
		return &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("fetch provider keys %s: status %d", k.url, resp.StatusCode), Err: err}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("provider keys %s are not a JWK set", k.url), Err: err}
	}
	if len(set.Keys) == 0 {
		return &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("provider keys %s: the set is empty", k.url), Err: errors.New("no keys")}
	}
	k.keys = set.Keys
	return nil
}

// Fetches reports how many times the keys were fetched (for tests and
// metrics).
func (k *keySet) Fetches() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fetches
}
