package apiserver

import (
	"net/http"
	"strings"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// ssoRoutes are the SSO login routes (docs/sso.md), throttled by client
// address like /v1/login: starting a flow counts as a challenge, finishing,
// polling and refreshing as a login.
func (s *Server) ssoRoutes() {
	t := s.cfg.Throttle
	s.route("GET /v1/login/sso", s.handleSSOProviders)
	s.route("POST /v1/login/sso/start", s.throttled(t.Challenge, s.handleSSOStart))
	s.route("POST /v1/login/sso/finish", s.throttled(t.Login, s.handleSSOFinish))
	s.route("POST /v1/login/sso/device", s.throttled(t.Challenge, s.handleSSODevice))
	s.route("POST /v1/login/sso/device/poll", s.throttled(t.Login, s.handleSSOPoll))
	s.route("POST /v1/login/refresh", s.throttled(t.Login, s.handleLoginRefresh))
}

func loginResponse(t grant.Token) api.LoginResponse {
	return api.LoginResponse{Token: t.Token, User: t.User, ExpiresAt: t.ExpiresAt, Admin: t.Admin, Auditor: t.Auditor}
}

func (s *Server) handleSSOProviders(w http.ResponseWriter, r *http.Request) error {
	out := api.SSOProviders{Providers: []api.SSOProvider{}}
	for _, p := range s.logins.SSOProviders(r.Context()) {
		out.Providers = append(out.Providers, api.SSOProvider{Name: p.Name, Display: p.Display, Device: p.Device})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleSSOStart(w http.ResponseWriter, r *http.Request) error {
	var req api.SSOStartRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	flow, authURL, expires, err := s.logins.SSOStart(r.Context(), req.Provider, req.RedirectURI, clientAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.SSOStartResponse{Flow: flow, AuthURL: authURL, ExpiresAt: expires})
	return nil
}

func (s *Server) handleSSOFinish(w http.ResponseWriter, r *http.Request) error {
	var req api.SSOFinishRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t, err := s.logins.SSOFinish(r.Context(), req.Flow, req.Code, req.State, clientAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, loginResponse(t))
	return nil
}

func (s *Server) handleSSODevice(w http.ResponseWriter, r *http.Request) error {
	var req api.SSODeviceRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ds, err := s.logins.SSODeviceStart(r.Context(), req.Provider, clientAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.SSODeviceResponse{Flow: ds.Flow, VerificationURI: ds.VerificationURI, VerificationURIComplete: ds.VerificationURIComplete,
		UserCode: ds.UserCode, Interval: ds.Interval, ExpiresAt: ds.ExpiresAt})
	return nil
}

func (s *Server) handleSSOPoll(w http.ResponseWriter, r *http.Request) error {
	var req api.SSOPollRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t, pending, err := s.logins.SSODevicePoll(r.Context(), req.Flow, clientAddr(r))
	if err != nil {
		return err
	}
	if pending > 0 {
		writeJSON(w, http.StatusAccepted, api.SSOPending{Interval: pending})
		return nil
	}
	writeJSON(w, http.StatusOK, loginResponse(t))
	return nil
}

func (s *Server) handleLoginRefresh(w http.ResponseWriter, r *http.Request) error {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t, err := s.logins.SSORefresh(r.Context(), token, clientAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, loginResponse(t))
	return nil
}
