package apiserver

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
)

func (s *Server) hostRoutes() {
	s.route("POST /v1/admin/hosts/tokens", s.role(grant.RoleAdmin, s.handleHostToken))
	s.route("GET /v1/admin/hosts", s.role(grant.RoleAdmin, s.handleAdminHosts))
	s.route("DELETE /v1/admin/hosts/{name}", s.role(grant.RoleAdmin, s.handleRemoveHost))
	// The join token, or the host key, is the credential: the login
	// limiter (per client address) bounds guessing.
	s.route("POST /v1/hosts/join", s.throttled(s.cfg.Throttle.Login, s.handleJoin))
	s.route("POST /v1/hosts/{name}/renew/challenge", s.throttled(s.cfg.Throttle.Challenge, s.handleRenewChallenge))
	s.route("POST /v1/hosts/{name}/renew", s.throttled(s.cfg.Throttle.Login, s.handleRenew))
	s.route("GET /v1/known_hosts", s.handleKnownHosts)
}

func (s *Server) handleHostToken(w http.ResponseWriter, r *http.Request) error {
	var body api.HostTokenRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	tok, err := s.hosts.CreateToken(r.Context(), callerOf(r), grant.HostTokenSpec{Name: body.Name, Address: body.Address, Labels: body.Labels, TTL: body.TTL})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.HostTokenResponse{Token: tok.Token, Host: tok.Host, ExpiresAt: tok.ExpiresAt})
	return nil
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) error {
	var body api.HostJoinRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	e, err := s.hosts.Join(r.Context(), clientAddr(r), body.Token, body.HostKey)
	if err != nil {
		return err
	}
	return s.writeEnrolled(w, r, e)
}

func (s *Server) handleRenewChallenge(w http.ResponseWriter, r *http.Request) error {
	nonce, expires, err := s.hosts.RenewChallenge(r.Context(), clientAddr(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HostChallengeResponse{Nonce: nonce, ExpiresAt: expires})
	return nil
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) error {
	var body api.HostRenewRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	e, err := s.hosts.Renew(r.Context(), clientAddr(r), r.PathValue("name"), body.Nonce, body.Signature)
	if err != nil {
		return err
	}
	return s.writeEnrolled(w, r, e)
}

// writeEnrolled answers a join or renewal with what the host installs.
func (s *Server) writeEnrolled(w http.ResponseWriter, r *http.Request, e grant.Enrolled) error {
	// The same KRL as GET /v1/krl, which jit host renew refreshes it from.
	krl, err := s.krl(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HostJoinResponse{
		Host: e.Host.Name, Address: e.Host.Address,
		HostCertificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.Certificate))),
		TargetCA:        ca.PublicKeyLine(s.cfg.CAKeys.Target, "jitssh target CA"),
		HostCA:          ca.PublicKeyLine(s.cfg.CAKeys.Host, "jitssh host CA"),
		KRL:             krl, Logins: e.Logins, Bastion: s.cfg.BastionAddr, RenewBefore: e.RenewBefore,
	})
	return nil
}

func (s *Server) handleAdminHosts(w http.ResponseWriter, r *http.Request) error {
	var expiring time.Duration
	if v := r.URL.Query().Get("expiring"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return wireErr(http.StatusBadRequest, api.CodeBadTime, "expiring %q is not a positive duration such as 72h", v)
		}
		expiring = d
	}
	views, err := s.hosts.List(r.Context(), expiring)
	if err != nil {
		return err
	}
	out := make([]api.HostRecord, 0, len(views))
	for _, v := range views {
		rec := api.HostRecord{Name: v.Name, Address: v.Address, Labels: v.Labels, HostKey: v.HostKey, EnrolledAt: v.EnrolledAt,
			EnrolledBy: v.EnrolledBy, CertExpiresAt: v.CertExpiresAt, LastSeen: v.LastSeen, Source: api.HostSourceStore}
		if v.CertSerial != 0 {
			rec.CertSerial = strconv.FormatUint(v.CertSerial, 10)
		}
		if v.FromPolicy {
			rec.Source = api.HostSourcePolicy
		}
		out = append(out, rec)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRemoveHost(w http.ResponseWriter, r *http.Request) error {
	var body api.HostRemoveRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.hosts.Remove(r.Context(), callerOf(r), r.PathValue("name"), body.Reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleKnownHosts serves the known_hosts text: public data, no login.
func (s *Server) handleKnownHosts(w http.ResponseWriter, r *http.Request) error {
	text, err := s.hosts.KnownHosts(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(text))
	return nil
}
