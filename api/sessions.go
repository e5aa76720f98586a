package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func (s *Server) routeSessions() {
	s.mux.HandleFunc("GET /v1/sessions", s.authed(s.handleSessions))
	s.mux.HandleFunc("GET /v1/sessions/search", s.auditor(s.handleSearch))
	s.mux.HandleFunc("GET /v1/sessions/{id}", s.authed(s.handleSession))
	s.mux.HandleFunc("GET /v1/sessions/{id}/recording", s.auditor(s.handleRecording))
}

// mayAudit reports whether the user may see every session, not only their own.
func (s *Server) mayAudit(user string) bool {
	p := s.cfg.Policy.Current()
	return p.IsAuditor(user) || p.IsAdmin(user)
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	q := r.URL.Query()
	f := audit.SessionFilter{User: q.Get("user"), Host: q.Get("host"), Live: q.Get("live") == "true", Limit: 1000}
	if !s.mayAudit(c.User) {
		if f.User != "" && f.User != c.User {
			writeError(w, http.StatusForbidden, "not_auditor", "listing other users' sessions needs the auditor role")
			return
		}
		f.User = c.User
	}
	var err error
	if f.Since, f.Until, err = s.timeRange(q); err != nil {
		writeError(w, http.StatusBadRequest, "bad_time", err.Error())
		return
	}
	ss, err := s.cfg.Store.Sessions(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	out := SessionsResponse{Sessions: make([]Session, 0, len(ss))}
	for _, x := range ss {
		out.Sessions = append(out.Sessions, toSession(x))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	x, ok := s.lookupSession(w, r)
	if !ok {
		return
	}
	if x.User != c.User && !s.mayAudit(c.User) {
		writeError(w, http.StatusForbidden, "not_auditor", "reading other users' sessions needs the auditor role")
		return
	}
	out := SessionDetail{Session: toSession(x)}
	if x.RequestID != "" {
		if req, err := s.cfg.Store.Request(r.Context(), x.RequestID); err == nil {
			approvals, _ := s.cfg.Store.Approvals(r.Context(), x.RequestID)
			v := toRequest(req, approvals)
			out.Request = &v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) lookupSession(w http.ResponseWriter, r *http.Request) (audit.Session, bool) {
	id := r.PathValue("id")
	x, err := s.cfg.Store.Session(r.Context(), id)
	if errors.Is(err, audit.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no session %q", id))
		return x, false
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return x, false
	}
	return x, true
}

// handleRecording streams a session's asciicast file. With follow=true it
// keeps streaming what a live session appends until the session ends. Every
// access is audited before a byte is sent.
func (s *Server) handleRecording(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	x, ok := s.lookupSession(w, r)
	if !ok {
		return
	}
	if x.RecordingPath == "" {
		writeError(w, http.StatusNotFound, "no_recording", fmt.Sprintf("session %s has no recording", x.ID))
		return
	}
	follow := r.URL.Query().Get("follow") == "true"
	purpose := r.URL.Query().Get("purpose")
	if purpose == "" {
		purpose = "replay"
	}
	// The purpose becomes the event's code, which SIEM rules match on.
	if !slices.Contains(recordingPurposes(), purpose) {
		writeError(w, http.StatusBadRequest, "bad_purpose", fmt.Sprintf("purpose %q must be one of %v", purpose, recordingPurposes()))
		return
	}
	if err := s.audited(r.Context(), audit.Event{Type: "recording.accessed", Code: purpose, Actor: c.User, User: x.User, Host: x.Host, Login: x.Login,
		SessionID: x.ID, RequestID: x.RequestID, ClientAddr: c.ClientAddr}); err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable; access to recordings is audited")
		return
	}
	f, err := os.Open(x.RecordingPath)
	if err != nil {
		writeError(w, http.StatusNotFound, "recording_missing", fmt.Sprintf("recording of session %s cannot be opened: %v", x.ID, err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("X-Jit-Session-Live", strconv.FormatBool(x.EndedAt.IsZero()))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil || !follow {
		return
	}
	s.follow(r.Context(), w, f, x.ID)
}

// recordingPurposes are the codes of recording.accessed events.
func recordingPurposes() []string { return []string{"replay", "export", "watch"} }

// follow streams what is appended to f until the session ends or the client
// goes away.
func (s *Server) follow(ctx context.Context, w http.ResponseWriter, f *os.File, id string) {
	flusher, _ := w.(http.Flusher)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := io.Copy(w, f); err != nil {
			return
		}
		x, err := s.cfg.Store.Session(ctx, id)
		if err != nil || !x.EndedAt.IsZero() {
			_, _ = io.Copy(w, f)
			return
		}
	}
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	text := q.Get("q")
	if text == "" {
		writeError(w, http.StatusBadRequest, "query_missing", "q is required")
		return
	}
	sq := audit.SearchQuery{Text: text, User: q.Get("user"), Host: q.Get("host"), Limit: 200}
	var err error
	if sq.Since, sq.Until, err = s.timeRange(q); err != nil {
		writeError(w, http.StatusBadRequest, "bad_time", err.Error())
		return
	}
	hits, err := s.cfg.Store.Search(r.Context(), sq)
	if err != nil {
		writeError(w, http.StatusBadRequest, "search_failed", err.Error())
		return
	}
	c := callerOf(r)
	_ = s.audited(r.Context(), audit.Event{Type: "recording.searched", Code: "ok", Actor: c.User, ClientAddr: c.ClientAddr, Message: clean(text)})
	out := SearchResponse{Hits: make([]SearchHit, 0, len(hits))}
	for _, h := range hits {
		out.Hits = append(out.Hits, SearchHit{SessionID: h.SessionID, Offset: h.Offset.Seconds(), Kind: h.Kind, Snippet: h.Snippet})
	}
	writeJSON(w, http.StatusOK, out)
}

func toSession(x audit.Session) Session {
	return Session{
		ID: x.ID, RequestID: x.RequestID, User: x.User, Host: x.Host, Login: x.Login, Serial: x.Serial, TargetSerial: x.TargetSerial,
		ClientAddr: x.ClientAddr, Command: x.Command, StartedAt: x.StartedAt, EndedAt: timePtr(x.EndedAt), ExitStatus: x.ExitStatus,
		BytesIn: x.BytesIn, BytesOut: x.BytesOut, RecordingSHA256: x.RecordingSHA256, RecordingSize: x.RecordingSize,
		EndReason: x.EndReason, Live: x.EndedAt.IsZero(),
	}
}
