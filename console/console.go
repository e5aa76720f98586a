// Package console serves jitd's web console under /console/ on the API's
// HTTPS listener: pending requests to approve or deny, live sessions to
// watch or end, the sessions list and full-text search, a player of
// recordings streamed in time windows, the audit trail with verify, and
// share links of one recording. Handlers translate, as apiserver's do:
// every decision and every audit record is grant's (grant.Service,
// grant.Sessions, grant.Admin, grant.Console), with the same roles as the
// API, checked on every page and action. Pages are html/template (all
// outside text rendered as text); the only script is the embedded
// static/console.js and the pinned asciinema-player.
package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sso"
)

// CSP is the Content-Security-Policy of every console answer: scripts and
// styles only from the console itself, nothing inline, no eval. The one
// relaxation is 'wasm-unsafe-eval': asciinema-player's terminal emulator is
// WebAssembly, which script-src must allow to compile; it allows no
// JavaScript eval.
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// CookieName is the console session cookie: __Host- makes the browser
// refuse it unless Secure, Path=/ and without Domain.
const CookieName = "__Host-jitssh_console"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// vendorFS holds the player's files, copied from console/web/node_modules
// by make (vendor step); a build without make embeds only the README and
// the player page says to run make.
//
//go:embed assets/vendor
var vendorFS embed.FS

// Config holds what the console needs; all but Clock, Rand and Logger are
// required.
type Config struct {
	Grants   *grant.Service
	Console  *grant.Console
	Sessions *grant.Sessions
	Admin    *grant.Admin
	Store    *audit.Store
	Policy   func() *policy.Policy
	// Recordings opens session recordings, read through sessionlog.
	Recordings audit.Recordings
	// CheckpointKey is what verify checks the audit checkpoints against.
	CheckpointKey ssh.PublicKey
	// Logins and SSO enable "Log in with <provider>" on the login page,
	// with SSORedirect, the console's https://NAME:PORT/console/sso/callback
	// (sso.ConsoleRedirectURI of jitd serve --console-url), which SSO
	// must accept (sso.Options.ConsoleRedirect). Any of them nil or empty
	// means no SSO login in the console.
	Logins      *grant.Logins
	SSO         *sso.RP
	SSORedirect string
	// Throttle bounds login attempts per client address (shared with the
	// API's logins); nil means one with grant's default limits.
	Throttle *grant.Throttle
	Clock    func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
	// ViewKey, if set, signs view tickets instead of a key made at start:
	// replicas share it, so that a ticket one gave is honoured by another
	// behind the same load balancer.
	ViewKey []byte
	// ProxyLive, if set, serves a live session's follow through the
	// replica that records it and reports whether it did
	// (apiserver.Server.ProxyLive).
	ProxyLive func(w http.ResponseWriter, r *http.Request, x audit.Session) (bool, error)
}

// Server serves /console/.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	tmpl    map[string]*template.Template
	viewKey []byte // signs view tickets (view.go); new at each start
	player  bool   // the vendored player files are embedded
	cursors cursors
}

// New returns a Server, or an error naming the missing configuration.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Grants == nil, cfg.Console == nil, cfg.Sessions == nil, cfg.Admin == nil:
		return nil, errors.New("console: config: Grants, Console, Sessions and Admin are required")
	case cfg.Store == nil || cfg.Policy == nil:
		return nil, errors.New("console: config: Store and Policy are required")
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
	if cfg.Throttle == nil {
		t, err := grant.NewThrottle(grant.ThrottleConfig{Store: cfg.Store, Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		cfg.Throttle = t
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), viewKey: make([]byte, 32)}
	if len(cfg.ViewKey) > 0 {
		s.viewKey = cfg.ViewKey
	} else if _, err := io.ReadFull(cfg.Rand, s.viewKey); err != nil {
		return nil, err
	}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	_, err := fs.Stat(vendorFS, "assets/vendor/asciinema-player.min.js")
	s.player = err == nil
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.mux.Handle("GET /console/static/", http.StripPrefix("/console/", assetHandler(staticFS)))
	s.mux.Handle("GET /console/vendor/", http.StripPrefix("/console/", vendorHandler()))
	s.mux.HandleFunc("GET /console/{$}", s.page("", s.handleHome))
	s.mux.HandleFunc("GET /console/login", s.handleLoginPage)
	s.mux.HandleFunc("POST /console/login", s.handleLogin)
	s.mux.HandleFunc("POST /console/login/check", s.handleLoginCheck)
	s.mux.HandleFunc("POST /console/logout", s.handleLogout)
	s.mux.HandleFunc("POST /console/sso/start", s.handleSSOStart)
	s.mux.HandleFunc("GET "+sso.ConsoleCallbackPath, s.handleSSOCallback)

	s.mux.HandleFunc("GET /console/requests", s.page("", s.handleRequests))
	s.mux.HandleFunc("POST /console/requests/{id}/decide", s.action("", s.handleDecide))
	s.mux.HandleFunc("GET /console/live", s.page(grant.RoleAuditor, s.handleLive))
	s.mux.HandleFunc("POST /console/sessions/{id}/revoke", s.action(grant.RoleAdmin, s.handleRevoke))
	s.mux.HandleFunc("GET /console/sessions", s.page("", s.handleSessions))
	s.mux.HandleFunc("GET /console/sessions/{id}/play", s.page(grant.RoleAuditor, s.handlePlay))
	s.mux.HandleFunc("GET /console/api/sessions/{id}/cast", s.data(grant.RoleAuditor, s.handleCast))
	s.mux.HandleFunc("GET /console/api/sessions/{id}/live", s.data(grant.RoleAuditor, s.handleLiveStream))
	s.mux.HandleFunc("GET /console/audit", s.page(grant.RoleAuditor, s.handleAudit))
	s.mux.HandleFunc("GET /console/shares", s.page(grant.RoleAuditor, s.handleShares))
	s.mux.HandleFunc("POST /console/sessions/{id}/share", s.action(grant.RoleAuditor, s.handleCreateShare))
	s.mux.HandleFunc("POST /console/shares/{id}/revoke", s.action("", s.handleRevokeShare))

	// Share links open one recording's player and its data, nothing else.
	s.mux.HandleFunc("GET /console/s/{token}", s.handleSharePage)
	s.mux.HandleFunc("GET /console/s/{token}/cast", s.handleShareCast)
}

// ServeHTTP implements http.Handler, with the console's security headers
// on every answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/console/static/") && !strings.HasPrefix(r.URL.Path, "/console/vendor/") {
		h.Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) now() time.Time { return s.cfg.Clock().UTC() }

// assetHandler serves embedded static files, cacheable for an hour.
func assetHandler(fsys fs.FS) http.Handler {
	fh := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fh.ServeHTTP(w, r)
	})
}

// vendorHandler serves the player's files, or says how to get them.
func vendorHandler() http.Handler {
	sub, _ := fs.Sub(vendorFS, "assets")
	files := assetHandler(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := fs.Stat(sub, strings.TrimPrefix(r.URL.Path, "/")); err != nil {
			http.Error(w, "the player's files are not in this build: build jitd with make (it runs npm ci and copies asciinema-player into console/assets/vendor)", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// mac returns the base64url HMAC of parts under the view key.
func (s *Server) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.viewKey)
	for _, p := range parts {
		m.Write([]byte(strconv.Itoa(len(p)) + ":" + p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
