package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/sso"
)

// SSOCookieName is the pre-login cookie that binds an SSO login flow to
// the browser that started it: its value is the flow id (256 random
// bits, a secret of this browser and the daemon's memory only). It is
// SameSite=Lax, not Strict, because it must come back on the provider's
// top-level redirect to the callback, which is a cross-site navigation.
const SSOCookieName = "__Host-jitssh_sso"

// ssoEnabled reports whether the login page offers SSO: providers and a
// configured console origin (Config.SSORedirect) are both needed.
func (s *Server) ssoEnabled() bool {
	return s.cfg.Logins != nil && s.cfg.SSO != nil && s.cfg.SSORedirect != ""
}

// loginPageData lists the providers for the login page's buttons.
func (s *Server) loginPageData(r *http.Request) map[string]any {
	if !s.ssoEnabled() {
		return nil
	}
	return map[string]any{"Providers": s.cfg.Logins.SSOProviders(r.Context())}
}

// loginCSP is the login page's CSP: the console's, with form-action also
// allowing the providers' authorization endpoints, where the SSO form's
// POST is redirected (browsers apply form-action to that redirect).
func (s *Server) loginCSP(r *http.Request) string {
	if !s.ssoEnabled() {
		return CSP
	}
	origins := s.cfg.SSO.AuthOrigins(r.Context())
	if len(origins) == 0 {
		return CSP
	}
	return strings.Replace(CSP, "form-action 'self'", "form-action 'self' "+strings.Join(origins, " "), 1)
}

var errNoSSO = &grant.Error{Kind: grant.KindNotFound, Code: sso.CodeUnknownProvider,
	Message: "this console offers no sso login: jitd serve needs --sso-config and --console-url"}

// handleSSOStart starts an authorization-code login at the posted
// provider with the console's configured redirect URI, sets the
// pre-login cookie to the flow id and sends the browser to the provider.
// It is same-origin only (a page elsewhere cannot start a login that
// would end in this browser) and shares the login limit.
func (s *Server) handleSSOStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	err := sameOrigin(r)
	if err == nil && !s.ssoEnabled() {
		err = errNoSSO
	}
	if err == nil {
		err = s.cfg.Throttle.Login(r.Context(), clientAddr(r))
	}
	var flow, authURL string
	var expires time.Time
	if err == nil {
		flow, authURL, expires, err = s.cfg.Logins.SSOStart(r.Context(), r.PostFormValue("provider"), s.cfg.SSORedirect, clientAddr(r))
	}
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SSOCookieName, Value: flow, Path: "/", Expires: expires,
		MaxAge: int(expires.Sub(s.now()).Round(time.Second).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// handleSSOCallback ends the login: code and state count only with the
// pre-login cookie of the flow they belong to (the flow is spent
// whatever the outcome, and the cookie cleared). The token is issued as
// for jit login --sso, then a console session starts on it.
func (s *Server) handleSSOCallback(w http.ResponseWriter, r *http.Request) {
	s.clearSSOCookie(w)
	if !s.ssoEnabled() {
		s.errorPage(w, r, nil, errNoSSO)
		return
	}
	if err := s.cfg.Throttle.Login(r.Context(), clientAddr(r)); err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	flow := ""
	if c, err := r.Cookie(SSOCookieName); err == nil {
		flow = c.Value
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		s.errorPage(w, r, nil, s.cfg.Logins.SSOAbandon(r.Context(), flow, e, q.Get("error_description"), clientAddr(r)))
		return
	}
	tok, err := s.cfg.Logins.SSOFinish(r.Context(), flow, q.Get("code"), q.Get("state"), clientAddr(r))
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	login, err := s.cfg.Console.StartSession(r.Context(), tok.User, tok.Token, clientAddr(r), tok.ExpiresAt, grant.MethodSSO)
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	if old, err := s.authenticate(r); err == nil {
		if err := s.cfg.Console.Logout(r.Context(), old.caller(), old.cookie); err != nil {
			s.cfg.Logger.Warn("console: end the replaced session", "user", old.User, "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: login.Cookie, Path: "/", Expires: login.ExpiresAt,
		MaxAge: int(login.ExpiresAt.Sub(s.now()).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	// Not a redirect: this answer ends a navigation that began at the
	// provider, and a browser sends no SameSite=Strict cookie on a
	// redirect chain that started cross-site. The page's own
	// (same-origin) refresh to /console/ carries the new cookie.
	s.render(w, http.StatusOK, "ssodone", nil, map[string]any{"User": login.User})
}

func (s *Server) clearSSOCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SSOCookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}
