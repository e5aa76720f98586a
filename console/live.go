package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/sessionlog"
)

const (
	// livePoll is how often a followed recording is read again for what
	// the bastion appended (it flushes once a second).
	livePoll = 250 * time.Millisecond
	// liveWriteTimeout bounds each write of the live stream, as the API's
	// recording stream does: the server's WriteTimeout bounds a whole
	// answer, which a follow outlives by design.
	liveWriteTimeout = time.Minute
	// liveRecheck is how often a followed session checks that its viewer
	// may still watch: console session not ended (logout), expired or its
	// token deleted, and the auditor role still held.
	liveRecheck = 2 * time.Second
)

// handleLiveStream follows a live session for asciinema-player's
// eventsource driver (server-sent events): one reset message with the
// terminal size, the current time and the screen so far (the sanitized
// prelude) as init, then each output and resize event as the bastion
// records it, and {"state":"offline"} when the session ends or the viewer
// may no longer watch it (liveContext).
func (s *Server) handleLiveStream(w http.ResponseWriter, r *http.Request, v *viewer) error {
	ticketExpires, err := s.checkTicket(r.URL.Query().Get("view"), "u:"+v.User, r.PathValue("id"))
	if err != nil {
		return err
	}
	x, err := s.cfg.Sessions.Get(r.Context(), v.caller(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if s.cfg.ProxyLive != nil {
		// Live on another replica: only its spool holds the recording.
		if done, err := s.cfg.ProxyLive(w, r, x); done || err != nil {
			return err
		}
	}
	st, err := s.catchUp(x)
	if err != nil {
		return err
	}
	f, err := s.cfg.Recordings.Open(x.RecordingPath)
	if err != nil {
		return &grant.Error{Kind: grant.KindNotFound, Code: grant.CodeNoRecording, Message: "the recording of session " + x.ID + " cannot be opened", Err: err}
	}
	defer f.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(map[string]any{"cols": st.width, "rows": st.height, "time": st.last, "init": st.pre.text()}); err != nil {
		return nil
	}
	ctx, cancel := s.liveContext(r.Context(), v, ticketExpires)
	defer cancel()
	s.follow(ctx, f, x.ID, st.events, send)
	_ = send(map[string]string{"state": "offline"})
	return nil
}

// liveContext is the context a follow runs under: it ends with the
// request's, at the earlier of the console session's expiry and the view
// ticket's, and at the first recheck (every liveRecheck) that finds the
// console session gone (logout, expiry, its token deleted, the user no
// longer enrolled) or the auditor role lost. A check at the start of the
// stream alone would let a watch outlive every one of those.
func (s *Server) liveContext(parent context.Context, v *viewer, ticketExpires time.Time) (context.Context, context.CancelFunc) {
	end := v.ExpiresAt
	if ticketExpires.Before(end) {
		end = ticketExpires
	}
	// The deadline is on the wall clock; end is on the console's clock.
	ctx, cancel := context.WithTimeout(parent, end.Sub(s.now()))
	go func() {
		tick := time.NewTicker(liveRecheck)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if !s.now().Before(end) || !s.cfg.Console.HasRole(v.User, grant.RoleAuditor) {
				cancel()
				return
			}
			if _, err := s.cfg.Console.Session(ctx, v.cookie); err != nil && ctx.Err() == nil {
				cancel()
				return
			}
		}
	}()
	return ctx, cancel
}

// liveState is a recording read up to its current end.
type liveState struct {
	pre           prelude
	width, height int
	last          float64
	events        int
}

// catchUp reads the recording as far as it is written.
func (s *Server) catchUp(x audit.Session) (liveState, error) {
	f, err := s.cfg.Recordings.Open(x.RecordingPath)
	if err != nil {
		return liveState{}, &grant.Error{Kind: grant.KindNotFound, Code: grant.CodeNoRecording, Message: "the recording of session " + x.ID + " cannot be opened", Err: err}
	}
	defer f.Close()
	rd, err := sessionlog.NewReader(f)
	if err != nil {
		return liveState{}, &grant.Error{Kind: grant.KindUnavailable, Code: "recording_unreadable", Message: "the recording of session " + x.ID + " cannot be read", Err: err}
	}
	st := liveState{width: rd.Header().Width, height: rd.Header().Height}
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, sessionlog.ErrTruncated) {
			return st, nil
		}
		if err != nil {
			return st, &grant.Error{Kind: grant.KindUnavailable, Code: "recording_unreadable", Message: "the recording of session " + x.ID + " cannot be read", Err: err}
		}
		st.events++
		st.last = e.Time
		switch e.Code {
		case sessionlog.CodeOutput:
			st.pre.add(e.Data)
		case sessionlog.CodeResize:
			if c, r, ok := parseSize(e.Data); ok {
				st.width, st.height = c, r
			}
		}
	}
}

// follow sends the events after the first skip ones as they are
// appended, until the session ends or ctx is done.
func (s *Server) follow(ctx context.Context, f io.Reader, id string, skip int, send func(any) error) {
	tail := &tailReader{ctx: ctx, f: f, ended: func() bool {
		x, err := s.cfg.Store.Session(ctx, id)
		return err != nil || !x.EndedAt.IsZero()
	}}
	rd, err := sessionlog.NewReader(tail)
	if err != nil {
		return
	}
	var san sessionlog.Sanitizer
	for n := 0; ; n++ {
		e, err := rd.Next()
		if err != nil {
			return
		}
		if n < skip {
			if e.Code == sessionlog.CodeOutput {
				san.Filter(e.Data) // keep the sanitizer's state in step
			}
			continue
		}
		switch e.Code {
		case sessionlog.CodeOutput:
			e.Data = san.Filter(e.Data)
		case sessionlog.CodeResize:
		default:
			continue
		}
		if err := send([]any{e.Time, e.Code, e.Data}); err != nil {
			return
		}
	}
}

// tailReader reads a growing file: at its end it waits for more until
// ended says the session is over (then EOF, after a last read) or ctx is
// done.
type tailReader struct {
	ctx   context.Context
	f     io.Reader
	ended func() bool
	last  bool
}

func (t *tailReader) Read(p []byte) (int, error) {
	for {
		n, err := t.f.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if t.last {
			return 0, io.EOF
		}
		select {
		case <-t.ctx.Done():
			return 0, t.ctx.Err()
		case <-time.After(livePoll):
		}
		// One more read after the end is seen: the bastion writes its last
		// lines before it records the end.
		t.last = t.ended()
	}
}
