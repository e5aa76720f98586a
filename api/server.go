package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
)

// PolicySource gives the server the policy in force and lets admins change it.
type PolicySource interface {
	// Current returns the policy in force, with enrolled users merged in.
	Current() *policy.Policy
	// Reload re-reads the policy file; on error the last good policy stays.
	Reload(ctx context.Context) error
	// RefreshUsers merges the users enrolled in the store into the policy.
	RefreshUsers(ctx context.Context) error
}

// Config holds what the server needs. Grants, Store, Policy and Keys are
// required.
type Config struct {
	Grants         *grant.Service
	Store          *audit.Store
	Policy         PolicySource
	Keys           *ca.Keys
	TLSFingerprint string
	BastionAddr    string
	// CheckpointKey must have signed the audit checkpoints that verify
	// checks; nil checks only their positions and hashes.
	CheckpointKey ssh.PublicKey
	// Recordings holds the session recordings that verify checks.
	Recordings audit.Recordings
	// TokenTTL is the lifetime of bearer tokens; zero means 8h.
	TokenTTL time.Duration
	Clock    func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
}

// DefaultTokenTTL is the life of a bearer token unless configured otherwise.
const DefaultTokenTTL = 8 * time.Hour

// Server serves the /v1 API.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu         sync.Mutex
	challenges map[string]challenge
	tokens     map[string]cachedToken // by token hash
}

// NewServer returns a Server, or an error naming the missing configuration.
func NewServer(cfg Config) (*Server, error) {
	switch {
	case cfg.Grants == nil:
		return nil, errors.New("api: config: Grants is required")
	case cfg.Store == nil:
		return nil, errors.New("api: config: Store is required")
	case cfg.Policy == nil:
		return nil, errors.New("api: config: Policy is required")
	case cfg.Keys == nil:
		return nil, errors.New("api: config: Keys is required")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), challenges: map[string]challenge{}, tokens: map[string]cachedToken{}}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/health", s.handleHealth)
	s.mux.HandleFunc("GET /v1/ca", s.handleCA)
	s.mux.HandleFunc("GET /v1/krl", s.handleKRL)
	s.mux.HandleFunc("POST /v1/login/challenge", s.handleChallenge)
	s.mux.HandleFunc("POST /v1/login", s.handleLogin)

	s.mux.HandleFunc("POST /v1/requests", s.authed(s.handleCreate))
	s.mux.HandleFunc("GET /v1/requests", s.authed(s.handleListRequests))
	s.mux.HandleFunc("GET /v1/requests/{id}", s.authed(s.handleGetRequest))
	s.mux.HandleFunc("POST /v1/requests/{id}/approve", s.authed(s.handleApprove))
	s.mux.HandleFunc("POST /v1/requests/{id}/deny", s.authed(s.handleDeny))
	s.mux.HandleFunc("POST /v1/requests/{id}/cancel", s.authed(s.handleCancel))
	s.mux.HandleFunc("POST /v1/requests/{id}/certificate", s.authed(s.handleRedeem))
	s.mux.HandleFunc("GET /v1/grants", s.authed(s.handleGrants))

	s.mux.HandleFunc("GET /v1/admin/users", s.admin(s.handleListUsers))
	s.mux.HandleFunc("POST /v1/admin/users", s.admin(s.handleAddUser))
	s.mux.HandleFunc("DELETE /v1/admin/users/{name}", s.admin(s.handleRemoveUser))
	s.mux.HandleFunc("POST /v1/admin/reload", s.admin(s.handleReload))
	s.mux.HandleFunc("POST /v1/admin/revoke", s.admin(s.handleRevoke))

	s.mux.HandleFunc("GET /v1/audit/events", s.auditor(s.handleEvents))
	s.mux.HandleFunc("GET /v1/audit/verify", s.auditor(s.handleVerify))
	s.routeSessions()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := s.cfg.Store.Events(r.Context(), audit.EventFilter{Limit: 1}); err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok"})
}

func (s *Server) handleCA(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, CAResponse{
		UserCA:      ca.PublicKeyLine(s.cfg.Keys.User.PublicKey(), "jitssh user CA"),
		HostCA:      ca.PublicKeyLine(s.cfg.Keys.Host.PublicKey(), "jitssh host CA"),
		TargetCA:    ca.PublicKeyLine(s.cfg.Keys.Target.PublicKey(), "jitssh target CA"),
		Bastion:     s.cfg.BastionAddr,
		TLSFingerpr: s.cfg.TLSFingerprint,
	})
}

// handleKRL serves an OpenSSH key revocation list of every revoked user
// certificate, for sshd's RevokedKeys on hosts that trust the user CA
// directly. Serials are not secret, so it needs no login: a cron job on a
// host can fetch it.
func (s *Server) handleKRL(w http.ResponseWriter, r *http.Request) {
	serials, err := s.cfg.Store.RevokedSerials(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	now := s.now()
	krl, err := ca.KRL(s.cfg.Keys.User.PublicKey(), serials, uint64(now.UnixNano()), now, "jitssh user CA revocations")
	if err != nil {
		s.cfg.Logger.Error("build KRL", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "build KRL")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(krl)
}

// decode reads exactly one JSON object of at most MaxBodyBytes with no
// unknown fields, and answers the client itself when that fails.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is over the %d byte limit", MaxBodyBytes))
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_body", "read request body: "+err.Error())
		return false
	}
	if err := DecodeStrict(body, v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", err.Error())
		return false
	}
	return true
}

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data. It is the parser of every API body.
func DecodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("request body: trailing data after the JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

// writeGrantError maps the lifecycle's error kinds to HTTP statuses.
func (s *Server) writeGrantError(w http.ResponseWriter, err error) {
	var ge *grant.Error
	if !errors.As(err, &ge) {
		s.cfg.Logger.Error("internal error", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	status := map[grant.Kind]int{
		grant.KindInvalid:     http.StatusBadRequest,
		grant.KindDenied:      http.StatusForbidden,
		grant.KindForbidden:   http.StatusForbidden,
		grant.KindNotFound:    http.StatusNotFound,
		grant.KindConflict:    http.StatusConflict,
		grant.KindUnavailable: http.StatusServiceUnavailable,
	}[ge.Kind]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if ge.Err != nil {
		s.cfg.Logger.Warn("request failed", "code", ge.Code, "err", ge.Err)
	}
	writeError(w, status, ge.Code, ge.Message)
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) now() time.Time { return s.cfg.Clock().UTC() }

// parseTTL parses a duration such as "10m"; empty means zero (the default).
func parseTTL(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration such as 10m", field, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q must be positive", field, v)
	}
	return d, nil
}

// audited appends one event outside the lifecycle (logins, admin actions,
// access to recordings). A failure is logged; callers that must not proceed
// without the record check the error.
func (s *Server) audited(ctx context.Context, e audit.Event) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		_, err := tx.Append(e)
		return err
	})
	if err != nil {
		s.cfg.Logger.Error("audit append failed", "event", e.Type, "err", err)
	}
	return err
}
