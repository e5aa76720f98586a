package bastion

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// recorder is one session's recording: the asciicast Writer, the search
// indexer it feeds, and the record-or-refuse rule. Until a Writer is
// attached (or when opening one failed under RecordingFailOpen) it records
// nothing and lets the session go on.
type recorder struct {
	log      *slog.Logger
	clock    func() time.Time
	failOpen bool
	pool     *sessionlog.EncoderPool // shared by the server's recordings; may be nil
	// end stops the session after a recording failure; it is called on its
	// own goroutine, since the failure may be met under the session's locks.
	end func(err error)

	mu     sync.Mutex // guards id, w, idx and failed
	id     string     // session ID, for logs
	w      *sessionlog.Writer
	idx    *indexer
	failed bool // the first write error has been handled
}

// open creates the recording file at path with header h; idx receives its
// text lines.
func (r *recorder) open(id, path string, h sessionlog.Header, idx *indexer) error {
	w, err := sessionlog.Create(path, h, r.writerOptions(idx.add))
	if err != nil {
		return fmt.Errorf("create recording %s: %w", path, err)
	}
	if idx != nil {
		idx.setStopLines(w.StopLines)
	}
	r.attach(id, w, idx)
	return nil
}

// attach makes w (and idx, which may be nil) the session's recording.
func (r *recorder) attach(id string, w *sessionlog.Writer, idx *indexer) {
	r.mu.Lock()
	r.id, r.w, r.idx = id, w, idx
	r.mu.Unlock()
}

// writerOptions are the options of the session's recording: onLine feeds
// the search index, and a failure met while encoding in the background
// ends the session (or is logged, with RecordingFailOpen) at once, not on
// the session's next event.
func (r *recorder) writerOptions(onLine func(sessionlog.Line)) sessionlog.WriterOptions {
	return sessionlog.WriterOptions{
		Clock:        r.clock,
		SyncInterval: time.Second,
		OnLine:       onLine,
		Pool:         r.pool,
		QueueSize:    recordQueueSize,
		OnError: func(err error) {
			go r.apply(func(*sessionlog.Writer) error { return err })
		},
	}
}

// recordQueueSize bounds the bytes a session's recording may hold queued
// for its encoder (and, double-buffered, as much again being encoded). A
// bulk stream fills it while other sessions' encoders have their turns, so
// it is what a busy session costs in memory; 1 MiB keeps the encoder fed
// (it is woken every 64 KiB) at a quarter of sessionlog's default.
const recordQueueSize = 1 << 20

// record queues p as one event of code sessionlog.CodeOutput or
// sessionlog.CodeInput (the Writer copies it). It reports false when the
// recording has failed and the session is being ended, so that p must not
// be forwarded (record or refuse).
func (r *recorder) record(code string, p []byte) bool {
	return r.apply(func(w *sessionlog.Writer) error {
		switch code {
		case sessionlog.CodeInput:
			return w.Input(p)
		case sessionlog.CodeOutput:
			return w.Output(p)
		}
		return fmt.Errorf("record: event code %q carries no data", code)
	})
}

// marker writes a sessionlog.CodeMarker event.
func (r *recorder) marker(label string) {
	r.apply(func(w *sessionlog.Writer) error { return w.Marker(label) })
}

// resize writes a sessionlog.CodeResize event.
func (r *recorder) resize(cols, rows int) {
	r.apply(func(w *sessionlog.Writer) error { return w.Resize(cols, rows) })
}

// apply applies fn to the writer; a failure ends the session unless
// RecordingFailOpen, in which case it is logged once and recording stops.
// It reports whether the session may go on: false once the recording has
// failed without RecordingFailOpen.
func (r *recorder) apply(fn func(*sessionlog.Writer) error) bool {
	r.mu.Lock()
	w, id := r.w, r.id
	if w == nil || r.failed {
		failed := r.failed
		r.mu.Unlock()
		return !failed || r.failOpen
	}
	err := fn(w)
	if err == nil {
		err = w.Err()
	}
	r.failed = err != nil
	r.mu.Unlock()
	if err == nil {
		return true
	}
	if r.failOpen {
		r.log.Warn("recording failed; session continues (RecordingFailOpen)", "session", id, "err", err)
		return true
	}
	r.log.Error("recording failed; ending session", "session", id, "err", err)
	go r.end(err)
	return false
}

// detach takes the writer and indexer away, so that nothing more is
// recorded; either may be nil.
func (r *recorder) detach() (*sessionlog.Writer, *indexer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, idx := r.w, r.idx
	r.w, r.idx = nil, nil
	return w, idx
}

// discard closes and removes the recording at path of a session that never
// started, and drops its unindexed lines.
func (r *recorder) discard(path string) {
	w, idx := r.detach()
	if w != nil {
		_, _ = w.Close()
		_ = os.Remove(path)
	}
	if idx != nil {
		idx.discard()
	}
}

// close finalises the recording and flushes the index. ok is false when
// there was no recording to close.
func (r *recorder) close() (sum sessionlog.Summary, ok bool, err error) {
	w, idx := r.detach()
	if w != nil {
		sum, err = w.Close()
	}
	if idx != nil {
		idx.stop()
	}
	return sum, w != nil, err
}

// errRecordingFailed stops a copy whose data could not be recorded.
var errRecordingFailed = errors.New("recording failed")

// recordingWriter is the writer a session's copy loop writes to, as
// tailscale's session recorder does: each chunk is counted, scanned for
// transferred file names, recorded, and only then written to dst, so that
// nothing the recording lacks reaches the other side.
type recordingWriter struct {
	dst    io.Writer
	rec    *recorder
	code   string // sessionlog.CodeOutput or sessionlog.CodeInput
	record bool   // false: count and scan, but leave out of the recording
	count  *atomic.Int64
	scan   scanner // nil: no transfer protocol to scan
}

// Write records p and forwards it; it fails without forwarding once the
// recording has failed (record or refuse).
func (rw *recordingWriter) Write(p []byte) (int, error) {
	rw.count.Add(int64(len(p)))
	if rw.scan != nil {
		for _, ev := range rw.scan.feed(p) {
			rw.rec.marker(ev)
		}
	}
	if rw.record && !rw.rec.record(rw.code, p) {
		return 0, errRecordingFailed
	}
	return rw.dst.Write(p)
}
