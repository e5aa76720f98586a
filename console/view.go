package console

import (
	"crypto/hmac"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// A view ticket proves that the page asking for a recording's windows was
// opened through grant, which recorded recording.accessed for it: the
// player page gets one (principal, session, expiry, signed with the
// server's view key) and every window request must carry it. So each page
// view of a recording is one audit event, not one per window, and no window
// is read without that event.
const viewTicketTTL = 12 * time.Hour

func (s *Server) viewTicket(principal, sessionID string) string {
	exp := strconv.FormatInt(s.now().Add(viewTicketTTL).Unix(), 10)
	return exp + "." + s.mac("view", principal, sessionID, exp)
}

// checkTicket returns the expiry of ticket if it is valid for principal
// and sessionID now.
func (s *Server) checkTicket(ticket, principal, sessionID string) (time.Time, error) {
	exp, sig, ok := strings.Cut(ticket, ".")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || !hmac.Equal([]byte(sig), []byte(s.mac("view", principal, sessionID, exp))) || s.now().Unix() >= n {
		return time.Time{}, &grant.Error{Kind: grant.KindForbidden, Code: "view_ticket_invalid", Message: "open the recording from its player page (the view ticket is missing, expired or for another recording)"}
	}
	return time.Unix(n, 0).UTC(), nil
}

// playData is what the player page's script reads from its data
// attributes.
type playData struct {
	Session   audit.Session
	Live      bool
	CastURL   string
	LiveURL   string
	At        string
	Duration  float64
	Player    bool // the player's files are in this build
	Shared    bool
	CanShare  bool
	CanRevoke bool
	ShareMax  string
	Shares    []audit.ShareLink
}

// handlePlay opens a recording's player: grant records recording.accessed
// (purpose watch for a live session, replay otherwise) before the page
// and its ticket are sent.
func (s *Server) handlePlay(w http.ResponseWriter, r *http.Request, v *viewer) error {
	x, err := s.cfg.Sessions.Get(r.Context(), v.caller(), r.PathValue("id"))
	if err != nil {
		return err
	}
	purpose := grant.PurposeReplay
	if x.EndedAt.IsZero() {
		purpose = grant.PurposeWatch
	}
	if x, err = s.cfg.Sessions.OpenRecording(r.Context(), v.caller(), x.ID, purpose); err != nil {
		return err
	}
	ticket := s.viewTicket("u:"+v.User, x.ID)
	d := s.playData(x, r.URL.Query().Get("at"))
	d.CastURL = "/console/api/sessions/" + x.ID + "/cast?view=" + ticket
	d.LiveURL = "/console/api/sessions/" + x.ID + "/live?view=" + ticket
	d.CanShare, d.CanRevoke = v.Auditor, v.Admin
	d.ShareMax = shortDuration(s.cfg.Policy().Console.ShareMax)
	if d.Shares, err = s.cfg.Console.Shares(r.Context(), v.caller(), x.ID); err != nil {
		return err
	}
	s.render(w, http.StatusOK, "play", v, d)
	return nil
}

func (s *Server) playData(x audit.Session, at string) playData {
	d := playData{Session: x, Live: x.EndedAt.IsZero(), Player: s.player, At: "0"}
	if f, err := strconv.ParseFloat(at, 64); err == nil && f >= 0 {
		d.At = strconv.FormatFloat(f, 'f', 3, 64)
	}
	if !x.EndedAt.IsZero() {
		d.Duration = x.EndedAt.Sub(x.StartedAt).Seconds()
	} else {
		d.Duration = s.now().Sub(x.StartedAt).Seconds()
	}
	return d
}

// handleCast serves one window of the recording (cast.go) to a player
// page that holds a ticket for it.
func (s *Server) handleCast(w http.ResponseWriter, r *http.Request, v *viewer) error {
	if _, err := s.checkTicket(r.URL.Query().Get("view"), "u:"+v.User, r.PathValue("id")); err != nil {
		return err
	}
	x, err := s.cfg.Sessions.Get(r.Context(), v.caller(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.serveWindow(w, r, x)
}

// handleSharePage opens the one recording a share link shares; grant
// records the use with the link's id and the client's address.
func (s *Server) handleSharePage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	x, l, err := s.cfg.Console.OpenShare(r.Context(), token, clientAddr(r))
	if err != nil {
		s.errorPage(w, r, nil, err)
		return
	}
	d := s.playData(x, r.URL.Query().Get("at"))
	// A link shares the recording, not a live follow: a live session's
	// share page plays the windows recorded so far.
	d.Shared, d.Live = true, false
	d.CastURL = "/console/s/" + token + "/cast?view=" + s.viewTicket("s:"+l.ID, x.ID)
	s.render(w, http.StatusOK, "shared", nil, d)
}

// handleShareCast serves a window to a share link's page while the link
// is valid; the ticket ties it to the page view grant recorded.
func (s *Server) handleShareCast(w http.ResponseWriter, r *http.Request) {
	l, err := s.cfg.Console.ShareLink(r.Context(), r.PathValue("token"))
	if err == nil {
		_, err = s.checkTicket(r.URL.Query().Get("view"), "s:"+l.ID, l.SessionID)
	}
	var x audit.Session
	if err == nil {
		x, err = s.cfg.Store.Session(r.Context(), l.SessionID)
	}
	if err == nil {
		err = s.serveWindow(w, r, x)
	}
	if err != nil {
		status, msg := s.answer(err)
		http.Error(w, msg, status)
	}
}

func (s *Server) handleShares(w http.ResponseWriter, r *http.Request, v *viewer) error {
	ls, err := s.cfg.Console.Shares(r.Context(), v.caller(), "")
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, "shares", v, map[string]any{"Shares": ls, "Flash": flash(r)})
	return nil
}

func (s *Server) handleCreateShare(w http.ResponseWriter, r *http.Request, v *viewer) error {
	ttl, err := time.ParseDuration(r.PostFormValue("ttl"))
	if err != nil {
		return &grant.Error{Kind: grant.KindInvalid, Code: api.CodeShareTTL, Message: "share link lifetime " + strconv.Quote(audit.BoundText(r.PostFormValue("ttl"), 32)) + " is not a duration such as 24h"}
	}
	sh, err := s.cfg.Console.CreateShare(r.Context(), v.caller(), r.PathValue("id"), ttl)
	if err != nil {
		return err
	}
	// The token is shown once, on the page that made it; it is stored
	// only as its hash.
	s.render(w, http.StatusOK, "shares", v, map[string]any{"Created": sh, "URL": "https://" + r.Host + "/console/s/" + sh.Token})
	return nil
}

func (s *Server) handleRevokeShare(w http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := s.cfg.Console.RevokeShare(r.Context(), v.caller(), r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, doneURL("/console/shares", "share_revoked", r.PathValue("id")), http.StatusSeeOther)
	return nil
}

// shortDuration writes d as 24h or 1h30m rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
