package apiserver

import (
	"context"
	"net/http"

	"github.com/jitssh/jitssh/grant"
)

// throttled runs next only if allow, grant's rate limit by client address,
// lets the call through; its refusal is answered 429 by handle.
func (s *Server) throttled(allow func(context.Context, string) error, next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := allow(r.Context(), clientAddr(r)); err != nil {
			return err
		}
		return next(w, r)
	}
}

// userThrottled is throttled by authenticated caller; it runs inside authed.
func (s *Server) userThrottled(allow func(context.Context, grant.Caller) error, next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := allow(r.Context(), callerOf(r)); err != nil {
			return err
		}
		return next(w, r)
	}
}
