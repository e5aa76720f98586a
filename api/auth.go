package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
)

const (
	challengeTTL = time.Minute
	// maxChallenges bounds memory held for unanswered challenges.
	maxChallenges = 10000
	tokenPrefix   = "jit_"
)

type challenge struct {
	user    string
	expires time.Time
}

type userKey struct{}

// callerOf returns the authenticated caller of a request.
func callerOf(r *http.Request) grant.Caller {
	return grant.Caller{User: r.Context().Value(userKey{}).(string), ClientAddr: clientAddr(r)}
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	var req ChallengeRequest
	if !decode(w, r, &req) {
		return
	}
	if err := policy.ValidName("user", req.User); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_user", err.Error())
		return
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "draw nonce")
		return
	}
	nonce := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	s.mu.Lock()
	for n, c := range s.challenges {
		if now.After(c.expires) {
			delete(s.challenges, n)
		}
	}
	if len(s.challenges) >= maxChallenges {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "busy", "too many logins in progress; retry shortly")
		return
	}
	s.challenges[nonce] = challenge{user: req.User, expires: now.Add(challengeTTL)}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ChallengeResponse{Nonce: nonce, ExpiresAt: now.Add(challengeTTL)})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if !decode(w, r, &req) {
		return
	}
	now := s.now()
	fail := func(status int, code, msg string) {
		_ = s.audited(r.Context(), audit.Event{Type: "login.failed", Code: code, User: clean(req.User), ClientAddr: clientAddr(r), Message: msg})
		writeError(w, status, code, msg)
	}
	s.mu.Lock()
	c, ok := s.challenges[req.Nonce]
	delete(s.challenges, req.Nonce) // one use, whatever the outcome
	s.mu.Unlock()
	if !ok || now.After(c.expires) || c.user != req.User {
		fail(http.StatusUnauthorized, "bad_challenge", "login challenge unknown, expired or for another user; start again")
		return
	}
	key, err := ca.ParseRequestKey(req.PublicKey)
	if err != nil {
		fail(http.StatusBadRequest, grant.CodeInvalidPublicKey, err.Error())
		return
	}
	pol := s.cfg.Policy.Current()
	u, ok := pol.User(req.User)
	if !ok {
		fail(http.StatusUnauthorized, "unknown_user", fmt.Sprintf("user %q is not enrolled", req.User))
		return
	}
	if !hasKey(u, key) {
		fail(http.StatusUnauthorized, "key_not_enrolled", fmt.Sprintf("key %s is not enrolled for %q", ssh.FingerprintSHA256(key), req.User))
		return
	}
	sig, err := parseSignature(req.Signature)
	if err != nil {
		fail(http.StatusBadRequest, "bad_signature", err.Error())
		return
	}
	if err := key.Verify(LoginMessage(req.User, req.Nonce, s.cfg.TLSFingerprint), sig); err != nil {
		fail(http.StatusUnauthorized, "bad_signature", "signature does not verify with the enrolled key")
		return
	}
	ttl := s.cfg.TokenTTL
	if req.TTL != "" {
		d, err := parseTTL("ttl", req.TTL)
		if err != nil {
			fail(http.StatusBadRequest, "ttl_invalid", err.Error())
			return
		}
		if d > ttl {
			fail(http.StatusBadRequest, "ttl_too_long", fmt.Sprintf("token ttl %s exceeds the maximum %s", d, ttl))
			return
		}
		ttl = d
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "draw token")
		return
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	t := audit.Token{Hash: hashToken(token), User: req.User, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	err = s.cfg.Store.Do(r.Context(), func(tx *audit.Tx) error {
		if err := tx.InsertToken(t); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "login", Code: "ok", Actor: req.User, User: req.User, ClientAddr: clientAddr(r),
			Data: map[string]string{"key_fingerprint": ssh.FingerprintSHA256(key), "expires_at": t.ExpiresAt.Format(time.RFC3339)}})
		return err
	})
	if err != nil {
		s.cfg.Logger.Error("record login", "user", req.User, "err", err)
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{Token: token, User: req.User, ExpiresAt: t.ExpiresAt, Admin: pol.IsAdmin(req.User), Auditor: pol.IsAuditor(req.User)})
}

func hasKey(u policy.User, key ssh.PublicKey) bool {
	want := key.Marshal()
	for _, k := range u.Keys {
		if bytes.Equal(k.Marshal(), want) {
			return true
		}
	}
	return false
}

func parseSignature(text string) (*ssh.Signature, error) {
	blob, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("signature is not base64: %w", err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(blob, sig); err != nil {
		return nil, fmt.Errorf("signature is not an SSH signature: %w", err)
	}
	return sig, nil
}

// hashToken is how tokens are stored: a leaked database does not leak
// usable tokens.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenRecheck bounds how long a token found in the store is trusted from
// memory before the store is asked again. Tokens are never changed in place,
// only added and left to expire, so the cache saves a store read per request
// without changing an answer; a removed user is still refused at once (the
// policy check below is not cached).
const tokenRecheck = 30 * time.Second

// maxCachedTokens bounds the memory the cache may take.
const maxCachedTokens = 10000

type cachedToken struct {
	user             string
	expires, recheck time.Time
}

// authenticate returns the user a bearer token belongs to.
func (s *Server) authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || !strings.HasPrefix(token, tokenPrefix) {
		return "", errors.New("missing bearer token; run jit login")
	}
	now := s.now()
	hash := hashToken(token)
	s.mu.Lock()
	ct, cached := s.tokens[hash]
	s.mu.Unlock()
	if !cached || !now.Before(ct.recheck) {
		t, err := s.cfg.Store.Token(r.Context(), hash)
		if err != nil {
			if errors.Is(err, audit.ErrNotFound) {
				return "", errors.New("token is not valid; run jit login")
			}
			return "", fmt.Errorf("look up token: %w", err)
		}
		ct = cachedToken{user: t.User, expires: t.ExpiresAt, recheck: now.Add(tokenRecheck)}
		s.mu.Lock()
		if len(s.tokens) >= maxCachedTokens {
			clear(s.tokens)
		}
		s.tokens[hash] = ct
		s.mu.Unlock()
	}
	if !now.Before(ct.expires) {
		return "", errors.New("token expired; run jit login")
	}
	if _, ok := s.cfg.Policy.Current().User(ct.user); !ok {
		return "", fmt.Errorf("user %q is no longer enrolled", ct.user)
	}
	return ct.user, nil
}

func (s *Server) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, err := s.authenticate(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	}
}

// admin guards operations that need the admin role; refusals are audited.
func (s *Server) admin(next http.HandlerFunc) http.HandlerFunc {
	return s.role("admin", func(p *policy.Policy, u string) bool { return p.IsAdmin(u) }, next)
}

// auditor guards the security team's read operations.
func (s *Server) auditor(next http.HandlerFunc) http.HandlerFunc {
	return s.role("auditor", func(p *policy.Policy, u string) bool { return p.IsAuditor(u) || p.IsAdmin(u) }, next)
}

func (s *Server) role(name string, has func(*policy.Policy, string) bool, next http.HandlerFunc) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request) {
		c := callerOf(r)
		if !has(s.cfg.Policy.Current(), c.User) {
			msg := fmt.Sprintf("%s %s needs the %s role", r.Method, r.URL.Path, name)
			_ = s.audited(r.Context(), audit.Event{Type: "access.denied", Code: "not_" + name, Actor: c.User, User: c.User, ClientAddr: c.ClientAddr, Message: msg})
			writeError(w, http.StatusForbidden, "not_"+name, msg)
			return
		}
		next(w, r)
	})
}

// clean bounds what an unauthenticated client may put into an audit row,
// cutting between characters so the row shows no U+FFFD.
func clean(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
