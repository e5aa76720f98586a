package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// pageData is what every template gets: the viewer (nil when logged out)
// and the page's own data.
type pageData struct {
	V     *viewer
	Title string
	Now   time.Time
	D     any
}

func (s *Server) parseTemplates() error {
	funcs := template.FuncMap{
		"ago": func(now, t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return now.Sub(t).Round(time.Second).String()
		},
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"secs": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	s.tmpl = map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" || name == "player" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/player.html", n)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", n, err)
		}
		s.tmpl[name] = t
	}
	return nil
}

var titles = map[string]string{
	"login": "Log in", "loggedout": "Logged out", "error": "Error", "home": "Console", "requests": "Pending requests",
	"live": "Live sessions", "sessions": "Sessions", "play": "Player", "audit": "Audit trail", "shares": "Share links",
	"shared": "Shared recording", "ssodone": "Logged in",
}

// render writes page name with data d, whole or not at all.
func (s *Server) render(w http.ResponseWriter, status int, name string, v *viewer, d any) {
	var buf bytes.Buffer
	if err := s.tmpl[name].Execute(&buf, pageData{V: v, Title: titles[name], Now: s.now(), D: d}); err != nil {
		s.cfg.Logger.Error("console template", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) errorPage(w http.ResponseWriter, _ *http.Request, v *viewer, err error) {
	status, msg := s.answer(err)
	s.render(w, status, "error", v, map[string]any{"Status": status, "Message": msg, "LoggedOut": status == http.StatusUnauthorized})
}

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request, v *viewer) error {
	s.render(w, http.StatusOK, "home", v, nil)
	return nil
}

func (s *Server) handleRequests(w http.ResponseWriter, r *http.Request, v *viewer) error {
	rs, err := s.cfg.Grants.List(r.Context(), v.caller(), grant.ListOptions{Pending: true, Limit: 500})
	if err != nil {
		return err
	}
	// Pending requests of the viewer's own are shown too, marked, so
	// they see why nobody else has approved yet; grant refuses approving
	// them.
	s.render(w, http.StatusOK, "requests", v, map[string]any{"Requests": rs, "Flash": flash(r)})
	return nil
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request, v *viewer) error {
	id, reason := r.PathValue("id"), r.PostFormValue("reason")
	var err error
	switch r.PostFormValue("verdict") {
	case "approve":
		_, err = s.cfg.Grants.Approve(r.Context(), v.caller(), id, reason)
	case "deny":
		_, err = s.cfg.Grants.Deny(r.Context(), v.caller(), id, reason)
	default:
		return &grant.Error{Kind: grant.KindInvalid, Code: "bad_verdict", Message: "verdict must be approve or deny"}
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, doneURL("/console/requests", r.PostFormValue("verdict"), id), http.StatusSeeOther)
	return nil
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request, v *viewer) error {
	ss, err := s.cfg.Sessions.List(r.Context(), v.caller(), audit.SessionFilter{Live: true, Limit: 500})
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, "live", v, map[string]any{"Sessions": ss, "Flash": flash(r)})
	return nil
}

// handleRevoke ends a live session by revoking the certificate it runs
// on (grant.Admin.Revoke, which revokes its target certificates too); the
// bastion cuts live connections on a revoked serial within seconds.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request, v *viewer) error {
	x, err := s.cfg.Sessions.Get(r.Context(), v.caller(), r.PathValue("id"))
	if err != nil {
		return err
	}
	reason := r.PostFormValue("reason")
	if reason == "" {
		reason = "ended from the console"
	}
	if err := s.cfg.Admin.Revoke(r.Context(), v.caller(), x.Serial, reason); err != nil {
		return err
	}
	http.Redirect(w, r, doneURL("/console/live", "revoked", x.ID), http.StatusSeeOther)
	return nil
}

// flashes are the sentences a page shows after an action, by the fixed
// code its redirect carries: the text is the server's, never the URL's,
// so a link cannot make the console say what its author wants.
var flashes = map[string]string{
	"approve":       "Approved request %s.",
	"deny":          "Denied request %s.",
	"revoked":       "Ended session %s: its certificate is revoked.",
	"share_revoked": "Revoked share link %s.",
}

// flashID is what an id in a flash may look like (request, session and
// share ids are letters, digits, _ and -).
var flashID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// doneURL is page after an action: done= one of flashes' codes, id= the
// object it acted on.
func doneURL(page, code, id string) string {
	return page + "?" + url.Values{"done": {code}, "id": {id}}.Encode()
}

// flash is the sentence of the request's done= and id=, or "" when either
// is not one the console sends.
func flash(r *http.Request) string {
	q := r.URL.Query()
	f, ok := flashes[q.Get("done")]
	if !ok || !flashID.MatchString(q.Get("id")) {
		return ""
	}
	return fmt.Sprintf(f, q.Get("id"))
}

// sessionQuery is the sessions page's filters as the form sent them.
type sessionQuery struct {
	User, Host, Login, Since, Until, Q string
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request, v *viewer) error {
	q := r.URL.Query()
	sq := sessionQuery{User: q.Get("user"), Host: q.Get("host"), Login: q.Get("login"), Since: q.Get("since"), Until: q.Get("until"), Q: q.Get("q")}
	since, err := parseTime("since", sq.Since)
	if err != nil {
		return err
	}
	until, err := parseTime("until", sq.Until)
	if err != nil {
		return err
	}
	d := map[string]any{"Q": sq}
	if sq.Q != "" {
		if err := s.cfg.Console.Authorize(r.Context(), v.caller(), grant.RoleAuditor, "searching recordings"); err != nil {
			return err
		}
		hits, err := s.cfg.Sessions.Search(r.Context(), v.caller(), audit.SearchQuery{Text: sq.Q, User: sq.User, Host: sq.Host, Login: sq.Login, Since: since, Until: until, Limit: 200})
		if err != nil {
			return err
		}
		d["Hits"] = hits
	} else {
		ss, err := s.cfg.Sessions.List(r.Context(), v.caller(), audit.SessionFilter{User: sq.User, Host: sq.Host, Login: sq.Login, Since: since, Until: until, Limit: 500})
		if err != nil {
			return err
		}
		d["Sessions"] = ss
	}
	s.render(w, http.StatusOK, "sessions", v, d)
	return nil
}

// parseTime reads a filter time: RFC 3339, or the browser's
// datetime-local form (taken as UTC).
func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil && audit.StorableTime(t) {
			return t.UTC(), nil
		}
	}
	return time.Time{}, &grant.Error{Kind: grant.KindInvalid, Code: "bad_time", Message: fmt.Sprintf("%s %q is not a time such as 2026-12-01T10:00", field, audit.BoundText(v, 64))}
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request, v *viewer) error {
	q := r.URL.Query()
	f := audit.EventFilter{User: q.Get("user"), Host: q.Get("host"), Type: q.Get("type"), SessionID: q.Get("session"), RequestID: q.Get("request"), Limit: 500, Newest: true}
	var err error
	if f.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", q.Get("until")); err != nil {
		return err
	}
	events, err := s.cfg.Store.Events(r.Context(), f)
	if err != nil {
		return &grant.Error{Kind: grant.KindUnavailable, Code: "audit_unavailable", Message: "audit store unavailable", Err: err}
	}
	d := map[string]any{"Events": events, "F": f, "Since": q.Get("since"), "Until": q.Get("until")}
	if q.Get("verify") == "1" {
		res, err := s.cfg.Store.Verify(r.Context(), audit.VerifyOptions{CheckpointKey: s.cfg.CheckpointKey, Recordings: s.cfg.Recordings})
		if err != nil {
			return &grant.Error{Kind: grant.KindUnavailable, Code: "audit_unavailable", Message: "verify could not run", Err: err}
		}
		d["Verify"] = res
	}
	s.render(w, http.StatusOK, "audit", v, d)
	return nil
}
