package bastion

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// Defaults for recordings without a pty.
const (
	defaultWidth  = 80
	defaultHeight = 24
)

// recordingPath is RecordingDir/YYYY/MM/DD/SESSIONID.cast.zst in UTC: the
// recording is zstd frames of asciicast v2 (sessionlog's stored format).
func recordingPath(dir string, t time.Time, id string) string {
	t = t.UTC()
	return filepath.Join(dir, t.Format("2006"), t.Format("01"), t.Format("02"), id+".cast.zst")
}

// openRecording creates the session's recording and its indexer.
func (ss *session) openRecording(su *setup) error {
	s := ss.srv
	rec := ss.snapshot()
	p := recordingPath(s.cfg.RecordingDir, rec.StartedAt, rec.ID)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("create recording directory: %w", err)
	}
	h := sessionlog.Header{
		Version: 2, Width: defaultWidth, Height: defaultHeight,
		Timestamp: rec.StartedAt.Unix(),
		Title:     fmt.Sprintf("%s@%s by %s", rec.Login, rec.Host, rec.User),
		Command:   rec.Command,
		SessionID: rec.ID, RequestID: rec.RequestID,
		User: rec.User, Login: rec.Login, Host: rec.Host,
	}
	if su.pty != nil {
		if su.pty.Cols > 0 {
			h.Width = int(su.pty.Cols)
		}
		if su.pty.Rows > 0 {
			h.Height = int(su.pty.Rows)
		}
		h.Env = map[string]string{"TERM": su.pty.Term}
	}
	idx := newIndexer(s, rec.ID, p)
	if err := ss.tape.open(rec.ID, p, h, idx); err != nil {
		idx.stop()
		return err
	}
	ss.mu.Lock()
	ss.rec.RecordingPath = p
	ss.mu.Unlock()
	return nil
}

// marker writes a marker event into the session's recording.
func (ss *session) marker(label string) { ss.tape.marker(label) }

// discardRecording closes and removes a recording of a session that never
// started.
func (ss *session) discardRecording() { ss.tape.discard(ss.snapshot().RecordingPath) }

// finish finalises the recording and reports SessionEnded exactly once.
func (ss *session) finish(reason string) {
	ss.mu.Lock()
	if reason != "" && ss.rec.EndReason == "" {
		ss.rec.EndReason = reason
	}
	if ss.rec.EndReason == "" {
		if r := ss.st.terminationReason(); r != "" {
			ss.rec.EndReason = r
		} else {
			ss.rec.EndReason = "closed"
		}
	}
	ss.mu.Unlock()

	sum, recorded, cerr := ss.tape.close()
	if cerr != nil {
		ss.srv.log.Error("finalise recording", "session", ss.snapshot().ID, "err", cerr)
	}
	ss.mu.Lock()
	ss.rec.EndedAt = ss.srv.cfg.Clock()
	if recorded {
		ss.rec.RecordingSHA256, ss.rec.RecordingSize = sum.SHA256, sum.Size
	}
	if cerr != nil && ss.rec.EndReason == "closed" {
		ss.rec.EndReason = "recording failed: " + cerr.Error()
	}
	ss.mu.Unlock()
	rec := ss.snapshot()
	ctx, cancel := backendCtx(context.Background())
	defer cancel()
	if err := ss.srv.cfg.Backend.SessionEnded(ctx, rec); err != nil {
		ss.srv.log.Error("audit session end", "session", rec.ID, "err", err)
	}
}

// terminationReason is why the connection is being cut, if it is.
func (st *connState) terminationReason() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.reason
}
