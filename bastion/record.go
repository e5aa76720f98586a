package bastion

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// Defaults for recordings without a pty.
const (
	defaultWidth  = 80
	defaultHeight = 24
)

// indexFlushInterval is how often recorded lines are sent to IndexText.
const indexFlushInterval = time.Second

// indexMaxBatch flushes early when this many lines are waiting.
const indexMaxBatch = 512

// indexMaxPending bounds the lines waiting for Backend.IndexText. A session
// that prints text faster than the store indexes it (cat of a large log)
// would otherwise grow the bastion's memory without bound; lines past the
// bound are left out of the search index (and the count logged), never
// out of the recording.
const indexMaxPending = 64 << 10

// recordingPath is RecordingDir/YYYY/MM/DD/SESSIONID.cast in UTC.
func recordingPath(dir string, t time.Time, id string) string {
	t = t.UTC()
	return filepath.Join(dir, t.Format("2006"), t.Format("01"), t.Format("02"), id+".cast")
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
	idx := newIndexer(s, rec.ID)
	w, err := sessionlog.Create(p, h, ss.writerOptions(idx.add))

	if err != nil {
		idx.stop()
		return fmt.Errorf("create recording %s: %w", p, err)
	}
	ss.recMu.Lock()
	ss.w, ss.idx = w, idx
	ss.recMu.Unlock()
	ss.mu.Lock()
	ss.rec.RecordingPath = p
	ss.mu.Unlock()
	return nil
}

// writerOptions are the options of the session's recording: onLine feeds
// the search index, and a failure met while encoding in the background
// ends the session (or is logged, with RecordingFailOpen) at once, not on
// the session's next event.
func (ss *session) writerOptions(onLine func(sessionlog.Line)) sessionlog.WriterOptions {
	return sessionlog.WriterOptions{
		Clock:        ss.srv.cfg.Clock,
		SyncInterval: time.Second,
		OnLine:       onLine,
		OnError: func(err error) {
			go ss.write(func(*sessionlog.Writer) error { return err })
		},
	}
}

// record queues p as one output or input event (the Writer copies it). It
// reports false when the recording has failed and the session is being
// ended, so that p must not be forwarded (record or refuse).
func (ss *session) record(kind string, p []byte) bool {
	return ss.write(func(w *sessionlog.Writer) error {
		if kind == "i" {
			return w.Input(p)
		}
		return w.Output(p)
	})
}

// marker writes an "m" event.
func (ss *session) marker(label string) {
	ss.write(func(w *sessionlog.Writer) error { return w.Marker(label) })
}

// resize writes an "r" event.
func (ss *session) resize(cols, rows int) {
	ss.write(func(w *sessionlog.Writer) error { return w.Resize(cols, rows) })
}

// write applies fn to the writer; a failure ends the session unless
// RecordingFailOpen, in which case it is logged once and recording stops.
// It reports whether the session may go on: false once the recording has
// failed without RecordingFailOpen.
func (ss *session) write(fn func(*sessionlog.Writer) error) bool {
	ss.recMu.Lock()
	w := ss.w
	if w == nil || ss.recFailed {
		failed := ss.recFailed
		ss.recMu.Unlock()
		return !failed || ss.srv.cfg.RecordingFailOpen
	}
	err := fn(w)
	if err == nil {
		err = w.Err()
	}
	ss.recFailed = err != nil
	ss.recMu.Unlock()
	if err == nil {
		return true
	}
	if ss.srv.cfg.RecordingFailOpen {
		ss.srv.log.Warn("recording failed; session continues (RecordingFailOpen)", "session", ss.snapshot().ID, "err", err)
		return true
	}
	ss.srv.log.Error("recording failed; ending session", "session", ss.snapshot().ID, "err", err)
	go ss.end("recording failed: "+err.Error(), "recording unavailable: "+err.Error())
	return false
}

// discardRecording closes and removes a recording of a session that never
// started.
func (ss *session) discardRecording() {
	ss.recMu.Lock()
	w, idx := ss.w, ss.idx
	ss.w, ss.idx = nil, nil
	ss.recMu.Unlock()
	if w != nil {
		_, _ = w.Close()
		_ = os.Remove(ss.snapshot().RecordingPath)
	}
	if idx != nil {
		idx.discard()
	}
}

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

	ss.recMu.Lock()
	w, idx := ss.w, ss.idx
	ss.w, ss.idx = nil, nil
	ss.recMu.Unlock()
	var sum sessionlog.Summary
	var cerr error
	if w != nil {
		sum, cerr = w.Close()
		if cerr != nil {
			ss.srv.log.Error("finalise recording", "session", ss.snapshot().ID, "err", cerr)
		}
	}
	if idx != nil {
		idx.stop()
	}
	ss.mu.Lock()
	ss.rec.EndedAt = ss.srv.cfg.Clock()
	if w != nil {
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

// indexer batches recording lines for Backend.IndexText.
type indexer struct {
	srv     *Server
	id      string
	mu      sync.Mutex
	buf     []sessionlog.Line
	skipped int // lines left out since the last flush: the index was behind
	kick    chan struct{}
	quit    chan bool // true: flush before exit
	done    chan struct{}
}

func newIndexer(s *Server, id string) *indexer {
	ix := &indexer{srv: s, id: id, kick: make(chan struct{}, 1), quit: make(chan bool), done: make(chan struct{})}
	go ix.loop()
	return ix
}

// add is the sessionlog OnLine callback; it never blocks on the Backend.
func (ix *indexer) add(l sessionlog.Line) {
	ix.mu.Lock()
	if len(ix.buf) >= indexMaxPending {
		ix.skipped++
		ix.mu.Unlock()
		return
	}
	ix.buf = append(ix.buf, l)
	full := len(ix.buf) >= indexMaxBatch
	ix.mu.Unlock()
	if full {
		select {
		case ix.kick <- struct{}{}:
		default:
		}
	}
}

func (ix *indexer) loop() {
	defer close(ix.done)
	t := time.NewTicker(indexFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ix.flush()
		case <-ix.kick:
			ix.flush()
		case final := <-ix.quit:
			if final {
				ix.flush()
			}
			return
		}
	}
}

func (ix *indexer) flush() {
	ix.mu.Lock()
	lines, skipped := ix.buf, ix.skipped
	ix.buf, ix.skipped = nil, 0
	ix.mu.Unlock()
	if skipped > 0 {
		ix.srv.log.Warn("search index behind; lines left out of it (the recording has them)", "session", ix.id, "lines", skipped)
	}
	if len(lines) == 0 {
		return
	}
	ctx, cancel := backendCtx(context.Background())
	defer cancel()
	if err := ix.srv.cfg.Backend.IndexText(ctx, ix.id, lines); err != nil {
		ix.srv.log.Warn("index recording text", "session", ix.id, "lines", len(lines), "err", err)
	}
}

// stop flushes what is left and ends the loop.
func (ix *indexer) stop() {
	ix.quit <- true
	<-ix.done
}

// discard ends the loop without flushing.
func (ix *indexer) discard() {
	ix.quit <- false
	<-ix.done
}
