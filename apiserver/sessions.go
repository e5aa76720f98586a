package apiserver

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sessionlog"
)

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := audit.SessionFilter{User: q.Get("user"), Host: q.Get("host"), Live: q.Get("live") == "true", Limit: 1000}
	var err error
	if f.Since, f.Until, err = s.timeRange(q); err != nil {
		return err
	}
	ss, err := s.sessions.List(r.Context(), callerOf(r), f)
	if err != nil {
		return err
	}
	out := api.SessionsResponse{Sessions: make([]api.Session, 0, len(ss))}
	for _, x := range ss {
		out.Sessions = append(out.Sessions, toSession(x))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessions.Get(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := api.SessionDetail{Session: toSession(x)}
	if x.RequestID != "" {
		if req, err := s.cfg.Store.Request(r.Context(), x.RequestID); err == nil {
			approvals, _ := s.cfg.Store.Approvals(r.Context(), x.RequestID)
			v := toRequest(req, approvals)
			out.Request = &v
		}
	}
	markers, more, err := s.cfg.Store.SessionMarkers(r.Context(), x.ID, api.MaxSessionMarkers)
	if err != nil {
		return err
	}
	for _, m := range markers {
		out.Markers = append(out.Markers, api.SessionMarker{Offset: m.Offset.Seconds(), Text: m.Text})
	}
	out.MoreMarkers = more
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRecording streams a session's recording file as stored: zstd frames
// of asciicast v2 (application/zstd), or plain asciicast v2 for recordings
// from before compression (application/x-asciicast). With follow=true it
// keeps streaming what a live session appends until the session ends. grant
// records every access before a byte is sent.
func (s *Server) handleRecording(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessions.OpenRecording(r.Context(), callerOf(r), r.PathValue("id"), r.URL.Query().Get("purpose"))
	if err != nil {
		return err
	}
	follow := r.URL.Query().Get("follow") == "true"
	f, err := s.cfg.Recordings.Open(x.RecordingPath)
	if err != nil {
		return wireErr(http.StatusNotFound, api.CodeRecordingMissing, "recording of session %s cannot be opened: %v", x.ID, err)
	}
	defer f.Close()
	// The first bytes say the format (the header is on disk before a
	// session starts); they are sent first.
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	contentType := "application/x-asciicast"
	if sessionlog.IsCompressed(head) {
		contentType = "application/zstd"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Jit-Session-Live", strconv.FormatBool(x.EndedAt.IsZero()))
	sw := newStream(w)
	w.WriteHeader(http.StatusOK)
	if _, err := sw.Write(head); err != nil {
		return nil
	}
	if _, err := io.Copy(sw, f); err != nil || !follow {
		return nil // the answer has begun: a failure now can only end it
	}
	s.follow(r.Context(), sw, f, x.ID)
	return nil
}

// follow streams what is appended to f until the session ends or the client
// goes away.
func (s *Server) follow(ctx context.Context, w *streamWriter, f io.Reader, id string) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		w.Flush()
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

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	text := q.Get("q")
	if text == "" {
		return wireErr(http.StatusBadRequest, api.CodeQueryMissing, "q is required")
	}
	sq := audit.SearchQuery{Text: text, User: q.Get("user"), Host: q.Get("host"), Limit: 200}
	var err error
	if sq.Since, sq.Until, err = s.timeRange(q); err != nil {
		return err
	}
	hits, err := s.sessions.Search(r.Context(), callerOf(r), sq)
	if err != nil {
		return err
	}
	out := api.SearchResponse{Hits: make([]api.SearchHit, 0, len(hits))}
	for _, h := range hits {
		out.Hits = append(out.Hits, api.SearchHit{SessionID: h.SessionID, Offset: h.Offset.Seconds(), Kind: h.Kind, Snippet: h.Snippet})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func toSession(x audit.Session) api.Session {
	return api.Session{
		ID: x.ID, RequestID: x.RequestID, User: x.User, Host: x.Host, Login: x.Login, Serial: x.Serial, TargetSerial: x.TargetSerial,
		ClientAddr: x.ClientAddr, Command: x.Command, StartedAt: x.StartedAt, EndedAt: timePtr(x.EndedAt), ExitStatus: x.ExitStatus,
		BytesIn: x.BytesIn, BytesOut: x.BytesOut, RecordingSHA256: x.RecordingSHA256, RecordingSize: x.RecordingSize,
		EndReason: x.EndReason, Live: x.EndedAt.IsZero(), Replica: x.Replica,
	}
}
