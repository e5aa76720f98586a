// Package apiserver serves jitd's HTTPS JSON API under /v1, whose wire types
// and client are package api. Handlers translate between the wire and the
// domain: they decode a body, call grant (the request lifecycle, logins,
// administration) or read the audit store, and encode the answer. They
// decide nothing and audit nothing; one adapter turns the errors they
// return into status codes and JSON error bodies.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sso"
)

// PolicySource gives the server the policy in force and lets admins change it.
type PolicySource interface {
	// Current returns the policy in force, with enrolled users merged in.
	Current() *policy.Policy
	grant.Reloader
}

// Config holds what the server needs. Grants, Store, Policy and CAKeys are
// required.
type Config struct {
	Grants *grant.Service
	Store  *audit.Store
	Policy PolicySource
	// CAKeys are the CA public keys the API publishes; the handlers never
	// hold a key that signs.
	CAKeys         ca.PublicKeys
	TLSFingerprint string
	BastionAddr    string
	// ReservedHostNames are the names of the bastion's host certificate,
	// which no target may be enrolled under (grant.HostsConfig.Reserved).
	ReservedHostNames []string
	// CheckpointKey must have signed the audit checkpoints that verify
	// checks; nil checks only their positions and hashes.
	CheckpointKey ssh.PublicKey
	// Recordings holds the session recordings that verify checks.
	Recordings audit.Recordings
	// Throttle rate-limits logins and request creation; nil means one
	// with grant's default limits.
	Throttle *grant.Throttle
	// TokenTTL is the lifetime of bearer tokens; zero means
	// grant.DefaultTokenTTL.
	TokenTTL time.Duration
	// Replica is the replica this server runs in (replicas.go); the zero
	// value knows no replicas and proxies nothing.
	Replica ReplicaConfig
	// SSO is the OpenID relying party; nil means no SSO routes answer
	// but GET /v1/login/sso, with no providers.
	SSO    *sso.RP
	Clock  func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
	// Instance names this replica in its policy.reload records
	// (grant.AdminConfig.Instance); empty leaves it out.
	Instance string
}

// Server serves the /v1 API.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	logins   *grant.Logins
	admin    *grant.Admin
	sessions *grant.Sessions
	hosts    *grant.Hosts
}

// New returns a Server, or an error naming the missing configuration.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Grants == nil:
		return nil, errors.New("apiserver: config: Grants is required")
	case cfg.Store == nil:
		return nil, errors.New("apiserver: config: Store is required")
	case cfg.Policy == nil:
		return nil, errors.New("apiserver: config: Policy is required")
	case cfg.CAKeys.User == nil || cfg.CAKeys.Host == nil || cfg.CAKeys.Target == nil:
		return nil, errors.New("apiserver: config: CAKeys with the user, host and target CA are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	fp := cfg.TLSFingerprint
	logins, err := grant.NewLogins(grant.LoginConfig{
		Store: cfg.Store, Policy: cfg.Policy.Current, TokenTTL: cfg.TokenTTL, Clock: cfg.Clock, Rand: cfg.Rand,
		Message:      func(user, nonce string) []byte { return api.LoginMessage(user, nonce, fp) },
		SSO:          cfg.SSO,
		RefreshUsers: cfg.Policy.RefreshUsers,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	admin, err := grant.NewAdmin(grant.AdminConfig{Store: cfg.Store, Policy: cfg.Policy.Current, Reloader: cfg.Policy, Clock: cfg.Clock, Instance: cfg.Instance})
	if err != nil {
		return nil, err
	}
	if cfg.Throttle == nil {
		if cfg.Throttle, err = grant.NewThrottle(grant.ThrottleConfig{Store: cfg.Store, Clock: cfg.Clock}); err != nil {
			return nil, err
		}
	}
	sessions, err := grant.NewSessions(grant.SessionsConfig{Store: cfg.Store, Policy: cfg.Policy.Current, Clock: cfg.Clock})
	if err != nil {
		return nil, err
	}
	hosts, err := cfg.Grants.NewHosts(grant.HostsConfig{Reloader: cfg.Policy,
		Message:  func(name, nonce string) []byte { return api.HostRenewMessage(name, nonce, fp) },
		Reserved: cfg.ReservedHostNames})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), logins: logins, admin: admin, sessions: sessions, hosts: hosts}
	s.routes()
	return s, nil
}

// Logins is the login domain the API authenticates with, for the daemon's
// change feed to drop cached tokens that another replica revoked.
func (s *Server) Logins() *grant.Logins { return s.logins }

func (s *Server) routes() {
	s.route("GET /v1/health", s.handleHealth)
	s.route("GET /v1/ca", s.handleCA)
	s.route("GET /v1/krl", s.handleKRL)
	s.route("POST /v1/login/challenge", s.throttled(s.cfg.Throttle.Challenge, s.handleChallenge))
	s.route("POST /v1/login", s.throttled(s.cfg.Throttle.Login, s.handleLogin))
	s.ssoRoutes()

	s.route("POST /v1/requests", s.authed(s.userThrottled(s.cfg.Throttle.CreateRequest, s.handleCreate)))
	s.route("GET /v1/requests", s.authed(s.handleListRequests))
	s.route("GET /v1/requests/{id}", s.authed(s.handleGetRequest))
	s.route("POST /v1/requests/{id}/approve", s.authed(s.handleApprove))
	s.route("POST /v1/requests/{id}/deny", s.authed(s.handleDeny))
	s.route("POST /v1/requests/{id}/cancel", s.authed(s.handleCancel))
	s.route("POST /v1/requests/{id}/certificate", s.authed(s.handleRedeem))
	s.route("GET /v1/grants", s.authed(s.handleGrants))
	s.route("GET /v1/grants/{serial}", s.authed(s.handleGrantStatus))
	s.route("GET /v1/hosts", s.authed(s.handleHosts))

	s.route("GET /v1/admin/users", s.role(grant.RoleAdmin, s.handleListUsers))
	s.route("POST /v1/admin/users", s.role(grant.RoleAdmin, s.handleAddUser))
	s.route("DELETE /v1/admin/users/{name}", s.role(grant.RoleAdmin, s.handleRemoveUser))
	s.route("POST /v1/admin/users/{name}/remove-key", s.role(grant.RoleAdmin, s.handleRemoveKey))
	s.route("GET /v1/admin/keys/duplicates", s.role(grant.RoleAdmin, s.handleKeyDuplicates))
	s.route("POST /v1/admin/reload", s.role(grant.RoleAdmin, s.handleReload))
	s.route("POST /v1/admin/revoke", s.role(grant.RoleAdmin, s.handleRevoke))
	s.route("GET /v1/admin/replicas", s.role(grant.RoleAdmin, s.handleReplicas))

	s.route("GET /v1/audit/events", s.role(grant.RoleAuditor, s.handleEvents))
	s.route("GET /v1/audit/verify", s.role(grant.RoleAuditor, s.handleVerify))

	s.route("GET /v1/sessions", s.authed(s.handleSessions))
	s.route("GET /v1/sessions/search", s.role(grant.RoleAuditor, s.handleSearch))
	s.route("GET /v1/sessions/{id}", s.authed(s.handleSession))
	s.route("GET /v1/sessions/{id}/recording", s.role(grant.RoleAuditor, s.proxyLive(s.handleRecording)))
	s.hostRoutes()
	s.consoleRoutes()
	s.accountRoutes()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.cfg.Store.Events(r.Context(), audit.EventFilter{Limit: 1}); err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "ok"})
	return nil
}

func (s *Server) handleCA(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, api.CAResponse{
		UserCA:      ca.PublicKeyLine(s.cfg.CAKeys.User, "jitssh user CA"),
		HostCA:      ca.PublicKeyLine(s.cfg.CAKeys.Host, "jitssh host CA"),
		TargetCA:    ca.PublicKeyLine(s.cfg.CAKeys.Target, "jitssh target CA"),
		Bastion:     s.cfg.BastionAddr,
		TLSFingerpr: s.cfg.TLSFingerprint,
	})
	return nil
}

// handleKRL serves one OpenSSH key revocation list with a section per CA:
// revoked user certificates under the user CA key (for hosts that trust
// the user CA directly), revoked per-session target certificates under
// the target CA key (for targets behind the bastion) and revoked host
// certificates under the host CA key (removed hosts, for clients). Serials are not
// secret, so it needs no login: a cron job on a host can fetch it.
func (s *Server) handleKRL(w http.ResponseWriter, r *http.Request) error {
	krl, err := s.krl(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(krl)
	return nil
}

// krl builds the one KRL, a section per CA key, of every revoked serial.
func (s *Server) krl(ctx context.Context) ([]byte, error) {
	byKind, err := s.cfg.Store.RevokedSerialsByKind(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	now := s.now()
	krl, err := ca.KRLOf([]ca.KRLSection{
		{CA: s.cfg.CAKeys.User, Serials: byKind["user"]},
		{CA: s.cfg.CAKeys.Target, Serials: byKind["target"]},
		{CA: s.cfg.CAKeys.Host, Serials: byKind["host"]},
	}, uint64(now.UnixNano()), now, "jitssh user, target and host CA revocations")
	if err != nil {
		return nil, fmt.Errorf("build KRL: %w", err)
	}
	return krl, nil
}

func (s *Server) now() time.Time { return s.cfg.Clock().UTC() }
