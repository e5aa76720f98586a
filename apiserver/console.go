package apiserver

import (
	"net/http"
	"strings"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// consoleRoutes serves what jit console needs of the API: a one-time code
// the web console (package console, under /console/) exchanges for a
// session cookie.
func (s *Server) consoleRoutes() {
	c, err := grant.NewConsole(grant.ConsoleConfig{Store: s.cfg.Store, Policy: s.cfg.Policy.Current, Clock: s.cfg.Clock, Rand: s.cfg.Rand})
	if err != nil {
		// New checked Store and Policy, the only requirements.
		panic(err)
	}
	s.route("POST /v1/console/codes", s.authed(func(w http.ResponseWriter, r *http.Request) error {
		if err := decode(w, r, &struct{}{}); err != nil {
			return err
		}
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		expires, err := s.logins.TokenExpiry(r.Context(), token)
		if err != nil {
			return err
		}
		code, codeExpires, err := c.IssueCode(r.Context(), callerOf(r), token, expires)
		if err != nil {
			return err
		}
		// The code travels in the fragment, which browsers send to no
		// server (no Referer, no access log); the login page's script
		// posts it.
		writeJSON(w, http.StatusOK, api.ConsoleCodeResponse{Code: code, ExpiresAt: codeExpires, URL: "https://" + r.Host + "/console/login#code=" + code})
		return nil
	}))
}
