package apiserver

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

type userKey struct{}

// callerOf returns the authenticated caller of a request.
func callerOf(r *http.Request) grant.Caller {
	return grant.Caller{User: r.Context().Value(userKey{}).(string), ClientAddr: clientAddr(r)}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) error {
	var req api.ChallengeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	nonce, expires, err := s.logins.Challenge(r.Context(), req.User, clientAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ChallengeResponse{Nonce: nonce, ExpiresAt: expires})
	return nil
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req api.LoginRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t, err := s.logins.Login(r.Context(), grant.LoginAttempt{
		User: req.User, Nonce: req.Nonce, PublicKey: req.PublicKey, Signature: req.Signature, TTL: req.TTL, ClientAddr: clientAddr(r),
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.LoginResponse{Token: t.Token, User: t.User, ExpiresAt: t.ExpiresAt, Admin: t.Admin, Auditor: t.Auditor})
	return nil
}

// authed runs next for a caller with a valid bearer token.
func (s *Server) authed(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = ""
		}
		user, err := s.logins.Authenticate(r.Context(), token)
		if err != nil {
			return err
		}
		return next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	}
}

// role runs next for an authenticated caller who has role; grant records
// the refusals.
func (s *Server) role(role grant.Role, next handlerFunc) handlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request) error {
		if err := s.logins.Authorize(r.Context(), callerOf(r), role, r.Method+" "+r.URL.Path); err != nil {
			return err
		}
		return next(w, r)
	})
}
