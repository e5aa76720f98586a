package console

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// viewer is the logged-in user of a console request.
type viewer struct {
	User           string
	CSRF           string
	Admin, Auditor bool
	ExpiresAt      time.Time
	cookie         string
	addr           string
}

func (v *viewer) caller() grant.Caller { return grant.Caller{User: v.User, ClientAddr: v.addr} }

type handler func(w http.ResponseWriter, r *http.Request, v *viewer) error

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate returns the console session of the request's cookie.
func (s *Server) authenticate(r *http.Request) (*viewer, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, &grant.Error{Kind: grant.KindUnauthenticated, Code: api.CodeConsoleSession, Message: "not logged in to the console: run jit console"}
	}
	cs, err := s.cfg.Console.Session(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	return &viewer{User: cs.User, CSRF: cs.CSRF, ExpiresAt: cs.ExpiresAt, cookie: c.Value, addr: clientAddr(r),
		Admin: s.cfg.Console.HasRole(cs.User, grant.RoleAdmin), Auditor: s.cfg.Console.HasRole(cs.User, grant.RoleAuditor)}, nil
}

// authorize authenticates the request and checks role (none when empty);
// grant records a refusal for a missing role.
func (s *Server) authorize(r *http.Request, role grant.Role) (*viewer, error) {
	v, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	if role != "" {
		if err := s.cfg.Console.Authorize(r.Context(), v.caller(), role, r.Method+" "+r.URL.Path); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// page serves an HTML page for a user with role; failures are error pages.
func (s *Server) page(role grant.Role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := s.authorize(r, role)
		if err == nil {
			err = h(w, r, v)
		}
		if err != nil {
			s.errorPage(w, r, v, err)
		}
	}
}

// data serves a non-HTML answer (recording windows, the live stream);
// failures are plain text.
func (s *Server) data(role grant.Role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := s.authorize(r, role)
		if err == nil {
			err = h(w, r, v)
		}
		if err != nil {
			status, msg := s.answer(err)
			http.Error(w, msg, status)
		}
	}
}

// action serves a state-changing POST: same-origin (Origin and
// Sec-Fetch-Site) and the session's CSRF token in the form, then role.
func (s *Server) action(role grant.Role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		var v *viewer
		err := sameOrigin(r)
		if err == nil {
			v, err = s.authenticate(r)
		}
		if err == nil {
			err = checkCSRF(r, v.CSRF)
		}
		if err == nil && role != "" {
			err = s.cfg.Console.Authorize(r.Context(), v.caller(), role, r.Method+" "+r.URL.Path)
		}
		if err == nil {
			err = h(w, r, v)
		}
		if err != nil {
			s.errorPage(w, r, v, err)
		}
	}
}

var errCSRF = &grant.Error{Kind: grant.KindForbidden, Code: api.CodeCSRF, Message: "refused: this form did not come from this console page (missing or wrong CSRF token, or another origin); reload the page and try again"}

// sameOrigin refuses a POST that a browser says came from another site:
// Sec-Fetch-Site must be same-origin when sent (browsers always send it,
// and pages cannot forge it); without it, Origin must be this console's.
// Origin alone is not enough: under Referrer-Policy no-referrer Chromium
// sends "Origin: null" with a same-origin form.
func sameOrigin(r *http.Request) error {
	origin, site := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")
	switch {
	case site != "" && site != "same-origin":
		return errCSRF
	case origin != "" && origin != "null" && origin != "https://"+r.Host:
		return errCSRF
	case site == "" && origin != "https://"+r.Host:
		return errCSRF
	}
	return nil
}

func checkCSRF(r *http.Request, want string) error {
	got := r.PostFormValue("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCSRF
	}
	return nil
}

// answer maps an error to a status and a message for the user: a
// grant.Error's own message, anything else "internal error" (logged).
func (s *Server) answer(err error) (int, string) {
	var ge *grant.Error
	if errors.As(err, &ge) {
		if ge.Err != nil {
			s.cfg.Logger.Warn("console request failed", "code", ge.Code, "err", ge.Err)
		}
		switch ge.Kind {
		case grant.KindInvalid:
			return http.StatusBadRequest, ge.Message
		case grant.KindUnauthenticated:
			return http.StatusUnauthorized, ge.Message
		case grant.KindDenied, grant.KindForbidden:
			return http.StatusForbidden, ge.Message
		case grant.KindNotFound:
			return http.StatusNotFound, ge.Message
		case grant.KindConflict:
			return http.StatusConflict, ge.Message
		case grant.KindUnavailable:
			return http.StatusServiceUnavailable, ge.Message
		case grant.KindRateLimited:
			return http.StatusTooManyRequests, ge.Message
		case grant.KindGone:
			return http.StatusGone, ge.Message
		}
	}
	s.cfg.Logger.Error("console internal error", "err", err)
	return http.StatusInternalServerError, "internal error"
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", s.loginCSP(r))
	s.render(w, http.StatusOK, "login", nil, s.loginPageData(r))
}

// loginCheck is the answer of POST /console/login/check: whose code the
// page holds, and who is logged in on this browser now ("" for nobody).
type loginCheck struct {
	User    string `json:"user"`
	Current string `json:"current,omitempty"`
}

// handleLoginCheck tells the login page whose code it holds, without
// spending it, so that the page asks "Log in as USER?" instead of
// submitting any code it is handed: a code in a link from someone else
// would otherwise log the victim in as them (login CSRF). It is
// same-origin only and shares the login limit.
func (s *Server) handleLoginCheck(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	err := sameOrigin(r)
	if err == nil {
		err = s.cfg.Throttle.Login(r.Context(), clientAddr(r))
	}
	var ans loginCheck
	if err == nil {
		ans.User, err = s.cfg.Console.CodeUser(r.Context(), r.PostFormValue("code"))
	}
	if err != nil {
		status, msg := s.answer(err)
		http.Error(w, msg, status)
		return
	}
	if v, err := s.authenticate(r); err == nil {
		ans.Current = v.User
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

// handleLogin exchanges the one-time code (posted by the login page's
// script from the URL fragment) for the session cookie.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := sameOrigin(r); err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	// Codes cannot be guessed (256 bits), but each failed exchange is
	// recorded: the login limit keeps a flood out of the audit log.
	if err := s.cfg.Throttle.Login(r.Context(), clientAddr(r)); err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	login, err := s.cfg.Console.Login(r.Context(), r.PostFormValue("code"), clientAddr(r))
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	// The browser's previous console session, if any, ends on the server:
	// its cookie is replaced, and must not stay valid where it was copied.
	if old, err := s.authenticate(r); err == nil {
		if err := s.cfg.Console.Logout(r.Context(), old.caller(), old.cookie); err != nil {
			s.cfg.Logger.Warn("console: end the replaced session", "user", old.User, "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: login.Cookie, Path: "/", Expires: login.ExpiresAt,
		MaxAge: int(login.ExpiresAt.Sub(s.now()).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// handleLogout ends the console session server-side and clears its
// cookie. A cookie that no longer opens a session (expired, ended, its
// token deleted) is cleared too: there is nothing left to end, and
// clearing a dead cookie needs no CSRF token.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := sameOrigin(r); err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	v, err := s.authenticate(r)
	var ge *grant.Error
	if errors.As(err, &ge) && ge.Kind == grant.KindUnauthenticated {
		s.loggedOut(w)
		return
	}
	if err == nil {
		err = checkCSRF(r, v.CSRF)
	}
	if err == nil {
		err = s.cfg.Console.Logout(r.Context(), v.caller(), v.cookie)
	}
	if err != nil {
		s.errorPage(w, r, v, err)
		return
	}
	s.loggedOut(w)
}

func (s *Server) loggedOut(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.render(w, http.StatusOK, "loggedout", nil, nil)
}
